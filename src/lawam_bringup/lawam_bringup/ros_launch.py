"""Turn a system description (systems.py) into a ROS 2 LaunchDescription.

Used by the thin files in launch/; imports launch/launch_ros only when called, so the rest of
lawam_bringup works on machines without ROS 2's launch tooling.

A required node that exits shuts the whole launch down (`on_exit`), with the reason `lawam launch` gives
too: "required node <name> exited with code <n>: <its last stderr line>" (a node that cannot work ends
with one line `<name>: error: <reason>`).
"""
from __future__ import annotations

import os

from lawam_bringup.systems import config_dir, get_system


def generate_launch_description_for(system_name: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
    from launch.event_handlers import OnProcessIO
    from launch_ros.actions import Node

    system = get_system(system_name)

    def nodes(context, *_, **__):
        values = {a.name: context.launch_configurations[a.name] for a in system.arguments}
        cfg = config_dir()
        entities = []
        for spec in system.resolve(values):
            last = {"line": ""}
            node = Node(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                        parameters=[os.path.join(cfg, f) for f in spec.param_files] + [dict(spec.parameters)],
                        remappings=list(spec.remappings),
                        on_exit=_shutdown_with_reason(Shutdown, spec.name, last) if spec.required else None)
            entities.append(node)
            if spec.required:
                entities.append(RegisterEventHandler(OnProcessIO(target_action=node,
                                                                 on_stderr=_remember_last_line(last))))
        return entities

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                      **({"choices": list(a.choices)} if a.choices else {}))
                for a in system.arguments]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])


def _remember_last_line(last: dict):
    def on_stderr(event) -> None:
        lines = [line.strip() for line in event.text.decode(errors="replace").splitlines() if line.strip()]
        if lines:
            last["line"] = lines[-1]
    return on_stderr


def _shutdown_with_reason(shutdown_cls, name: str, last: dict):
    """on_exit of a required node: shut the launch down, saying which node, its exit code and last words."""
    def on_exit(event, context):
        reason = f"required node {name} exited with code {event.returncode}"
        return shutdown_cls(reason=reason + (f": {last['line']}" if last["line"] else ""))
    return on_exit
