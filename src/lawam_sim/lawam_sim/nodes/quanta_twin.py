"""quanta_twin: the MuJoCo bimanual (ViperX pair) stand-in for the Quanta X1 behind the Quanta bridge's contract
(parameters: lawam_sim/twin_settings.py).

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
from lawam_sim.twin_settings import quanta_twin_params


class QuantaTwin(TwinNode):
    embodiment = "quanta_x1"
    declared_params = staticmethod(quanta_twin_params)

    def __init__(self):
        super().__init__("quanta_twin")

    def _setup_io(self) -> None:
        v = self.params
        arms = get_embodiment(self.embodiment).layout.arms
        self.pose_pubs = {}
        for arm in arms:
            self.create_subscription(PoseStamped, v[f"{arm}_target_topic"],
                                     lambda m, a=arm: self._pose_target(a, m), BEST_EFFORT)
            self.create_subscription(Float64, v[f"{arm}_gripper_topic"],
                                     lambda m, a=arm: self._gripper_opening(a, m.data), RELIABLE)
            self.pose_pubs[arm] = self.create_publisher(PoseStamped, v[f"{arm}_current_pose_topic"], BEST_EFFORT)
        self.js_pub = self.create_publisher(JointState, v["joint_states_topic"], RELIABLE)
        self.camera_pubs.append(("cam_high", self.create_publisher(Image, v["camera_topic"], IMAGES)))
        if v["wrist_cameras"]:
            for arm in arms:
                self.camera_pubs.append((f"{arm}_wrist", self.create_publisher(
                    Image, v[f"{arm}_wrist_camera_topic"], IMAGES)))
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
