"""The demo monitor's ROS parameters, each declared once (type, default, description, bounds; ROS-free).

``lawam_bringup.demo_monitor`` declares exactly this list through
``lawam_policy.nodes.common.declare_parameters``; ``docs/parameters.md`` is generated from it.
"""
from __future__ import annotations

from dataclasses import dataclass

from lawam_policy.embodiments import get_embodiment
from lawam_policy.parameters import Param, params_of, setting

_FRANKA = get_embodiment("franka_panda")


@dataclass
class DemoMonitorSettings:
    output_dir: str = setting("outputs/demo/latest", "directory of the demo's video, plots and summary")
    system: str = setting("", "system name written into the summary (e.g. franka_pick_place)")
    camera_topic: str = setting(_FRANKA.primary_camera_topic, "camera image recorded into the video")
    eef_pose_topic: str = setting(_FRANKA.measured_pose_topics[0], "measured EEF PoseStamped (trajectory plot)")
    command_pose_topic: str = setting("", "the bridge's commanded PoseStamped (commands vs targets); empty: none")
    twin_stats_topic: str = setting("", "the twin's ~/stats (std_msgs/String JSON); empty: none")
    video_fps: float = setting(5.0, "frame rate of the recorded video (Hz)", above=0.0)


def demo_monitor_params() -> list[Param]:
    """Every parameter of the demo monitor (lawam_bringup/demo_monitor)."""
    return params_of(DemoMonitorSettings)
