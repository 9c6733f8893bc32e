"""quanta_twin: the MuJoCo bimanual (ViperX pair) stand-in for the Quanta X1 behind the Quanta bridge's contract
(see config/quanta_twin.yaml).

In:  PoseStamped targets (frame base_link) on ``left_target_topic`` / ``right_target_topic``; gripper openings
     (0 closed .. 1 open) on ``left_gripper_topic`` / ``right_gripper_topic``.
Out: /clock, measured EEF poses (best effort), /joint_states, three rgb8 cameras, success Bool, ``~/stats``,
     teleop ActionChunks when ``expert`` is on. Service: ``~/reset``.
"""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64

from lawam_policy.embodiments import get_embodiment
from lawam_sim.nodes.twin_node import BEST_EFFORT, IMAGES, RELIABLE, TwinNode, run


class QuantaTwin(TwinNode):
    embodiment = "quanta_x1"
    default_scene = "quanta_towel_fold"

    def __init__(self):
        super().__init__("quanta_twin")

    def _setup_io(self) -> None:
        P = self.declare_parameter
        e = get_embodiment(self.embodiment)  # the robot's topics from the registry
        self.pose_pubs = {}
        for i, arm in enumerate(e.layout.arms):
            self.create_subscription(PoseStamped, P(f"{arm}_target_topic", e.target_topics[i]).value,
                                     lambda m, a=arm: self._pose_target(a, m), BEST_EFFORT)
            self.create_subscription(Float64, P(f"{arm}_gripper_topic", e.gripper_command_topics[i]).value,
                                     lambda m, a=arm: self._gripper_opening(a, m.data), RELIABLE)
            self.pose_pubs[arm] = self.create_publisher(
                PoseStamped, P(f"{arm}_current_pose_topic", e.measured_pose_topics[i]).value, BEST_EFFORT)
        self.js_pub = self.create_publisher(JointState, P("joint_states_topic", "/joint_states").value, RELIABLE)
        self.camera_pubs.append(("cam_high", self.create_publisher(
            Image, P("camera_topic", e.camera_topic("primary")).value, IMAGES)))
        if P("wrist_cameras", True).value:
            for arm in e.layout.arms:
                self.camera_pubs.append((f"{arm}_wrist", self.create_publisher(
                    Image, P(f"{arm}_wrist_camera_topic", e.camera_topic(f"{arm}_wrist")).value, IMAGES)))
        self._joints = self.scene.joint_names()
        self._joints = [j for j in self._joints if j.startswith("vx300s_")]

    def _publish_state(self, stamp) -> None:
        for arm, pub in self.pose_pubs.items():
            pub.publish(self._pose_stamped(stamp, arm))
        self.js_pub.publish(self._joint_state_msg(stamp, self._joints))


def main(args=None) -> int:
    return run(QuantaTwin, args)


if __name__ == "__main__":
    raise SystemExit(main())
