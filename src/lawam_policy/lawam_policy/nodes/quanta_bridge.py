"""Quanta X1 bridge: two arms, each a PoseStamped target and a std_msgs/Float64 gripper opening (0..1)."""
from __future__ import annotations

from ..runtime.bridge_core import TickResult
from .bridge_node import BridgeNode, TopicGrippers, spin_node
from .common import declare


class QuantaBridge(BridgeNode):
    DEFAULTS = {
        "embodiment": "quanta_x1",
        "arm_names": ["left", "right"],
        "frame_id": "base_link",
        "chunk_topic": "/lawam/action_chunk",
        "status_topic": "/lawam/bridge_status",
        "target_topics": ["/left_arm/target_pose", "/right_arm/target_pose"],
        "measured_pose_topics": ["/left_arm/current_pose", "/right_arm/current_pose"],
        "control_rate_hz": 250.0,
        "status_rate_hz": 10.0,
        "workspace_min": [-0.7, -0.55, 0.0],
        "workspace_max": [0.7, 0.55, 0.55],
        "max_linear_speed": 0.5,
        "max_angular_speed": 1.0,
        "max_linear_accel": 4.0,
        "max_angular_accel": 8.0,
        "gripper_min": 0.0,
        "gripper_max": 1.0,
        "max_start_distance_m": 0.15,
        "max_start_angle_rad": 0.6,
        "startup_ramp_s": 2.0,
        "startup_speed_scale": 0.2,
        "execution_delay_s": 0.0,
        "blend_window_s": 0.2,
        "interpolation": "cubic",
        "initial_gripper": 1.0,
    }

    def __init__(self, node_name: str = "quanta_bridge", **kwargs):
        super().__init__(node_name, **kwargs)
        topics = list(declare(self, "gripper_topics", ["/left_gripper/command", "/right_gripper/command"],
                              "std_msgs/Float64 opening 0..1 per arm"))
        if len(topics) != len(self.arm_names):
            raise ValueError(f"need one gripper topic per arm {list(self.arm_names)}")
        self.grippers = TopicGrippers(self, topics)
        self.start_control()

    def send_grippers(self, result: TickResult, now: float) -> None:
        self.grippers.send([c.gripper for c in result.commands], now)


def main(args=None):
    spin_node(QuantaBridge, args)


if __name__ == "__main__":
    main()
