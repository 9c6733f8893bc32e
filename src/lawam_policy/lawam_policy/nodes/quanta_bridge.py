"""Quanta X1 bridge: two arms, each a PoseStamped target and a std_msgs/Float64 gripper opening (0..1)."""
from __future__ import annotations

from ..runtime.bridge_core import TickResult
from .bridge_node import BridgeNode, TopicGrippers
from .common import declare
from .main import main_for


class QuantaBridge(BridgeNode):
    DEFAULTS = {
        **BridgeNode.DEFAULTS,
        "embodiment": "quanta_x1",
        "arm_names": ["left", "right"],
        "frame_id": "base_link",
        "target_topics": ["/left_arm/target_pose", "/right_arm/target_pose"],
        "measured_pose_topics": ["/left_arm/current_pose", "/right_arm/current_pose"],
        "control_rate_hz": 250.0,
        "workspace_min": [-0.7, -0.55, 0.0],
        "workspace_max": [0.7, 0.55, 0.55],
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


main = main_for(QuantaBridge)


if __name__ == "__main__":
    raise SystemExit(main())
