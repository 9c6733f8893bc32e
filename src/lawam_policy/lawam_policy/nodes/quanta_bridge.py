"""Quanta X1 bridge: two arms, each a PoseStamped target and a std_msgs/Float64 gripper opening (0..1)."""
from __future__ import annotations

from ..parameters import quanta_bridge_params
from ..runtime.bridge_core import TickResult
from .bridge_node import BridgeNode, TopicGrippers
from .main import main_for


class QuantaBridge(BridgeNode):
    def __init__(self, node_name: str = "quanta_bridge", **kwargs):
        super().__init__(node_name, quanta_bridge_params(), **kwargs)
        topics = list(self.params["gripper_topics"])
        if len(topics) != len(self.arm_names):
            raise ValueError(f"need one gripper topic per arm {list(self.arm_names)}")
        self.grippers = TopicGrippers(self, topics)
        self.start_control()

    def send_grippers(self, result: TickResult, now: float) -> None:
        self.grippers.send([c.gripper for c in result.commands], now)


main = main_for(QuantaBridge)


if __name__ == "__main__":
    raise SystemExit(main())
