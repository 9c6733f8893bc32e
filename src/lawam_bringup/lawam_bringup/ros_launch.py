"""Turn a system description (systems.py) into a ROS 2 LaunchDescription.

Used by the thin files in launch/; imports launch/launch_ros only when called, so the rest of
lawam_bringup works on machines without ROS 2's launch tooling.
"""
from __future__ import annotations

import os

from lawam_bringup.systems import config_dir, get_system


def generate_launch_description_for(system_name: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch_ros.actions import Node

    system = get_system(system_name)

    def nodes(context, *_, **__):
        values = {a.name: context.launch_configurations[a.name] for a in system.arguments}
        cfg = config_dir()
        return [
            Node(package=spec.package, executable=spec.executable, name=spec.name, output="screen",
                 parameters=[os.path.join(cfg, f) for f in spec.param_files] + [dict(spec.parameters)],
                 remappings=list(spec.remappings),
                 on_exit=Shutdown(reason=f"required node {spec.name} exited") if spec.required else None)
            for spec in system.resolve(values)
        ]

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                      **({"choices": list(a.choices)} if a.choices else {}))
                for a in system.arguments]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
