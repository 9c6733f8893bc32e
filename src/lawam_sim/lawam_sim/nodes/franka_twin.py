"""franka_twin: the MuJoCo Franka Panda behind the Franka bridge's topic contract (parameters:
lawam_sim/twin_settings.py).

In:  PoseStamped targets (frame panda_link0) on ``pose_target_topic``; gripper width (m, 0..0.08) on
     ``gripper_width_topic``.
Out: /clock, measured EEF PoseStamped (best effort), /joint_states, finger joint states (each = width / 2),
     rgb8 camera images, success Bool, ``~/stats`` (JSON counters), teleop ActionChunks when ``expert`` is on.
Service: ``~/reset`` (lawam_msgs/srv/Reset; seed < 0 = next evaluation seed).
"""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64

from lawam_sim.nodes.twin_node import BEST_EFFORT, IMAGES, RELIABLE, TwinNode, run
from lawam_sim.scenes.franka import ARM_JOINTS, MAX_WIDTH
from lawam_sim.twin_settings import franka_twin_params


class FrankaTwin(TwinNode):
    embodiment = "franka_panda"
    declared_params = staticmethod(franka_twin_params)

    def __init__(self):
        super().__init__("franka_twin")

    def _setup_io(self) -> None:
        v = self.params
        self.create_subscription(PoseStamped, v["pose_target_topic"], lambda m: self._pose_target("arm", m),
                                 BEST_EFFORT)
        self.create_subscription(Float64, v["gripper_width_topic"], self._on_width, RELIABLE)
        self.pose_pub = self.create_publisher(PoseStamped, v["current_pose_topic"], BEST_EFFORT)
        self.js_pub = self.create_publisher(JointState, v["joint_states_topic"], RELIABLE)
        self.finger_pub = self.create_publisher(JointState, v["finger_joint_states_topic"], RELIABLE)
        self.arm_id = v["arm_id"]
        self.camera_pubs.append(("front", self.create_publisher(Image, v["camera_topic"], IMAGES)))
        if v["wrist_camera"]:
            self.camera_pubs.append(("handcam_rgb", self.create_publisher(Image, v["wrist_camera_topic"], IMAGES)))

    def _on_width(self, msg: Float64) -> None:
        # width (m) 0..0.08 -> opening 0..1 (the scene clips to the hand's range)
        self._gripper_opening("arm", float(msg.data) / MAX_WIDTH)

    def _publish_state(self, stamp) -> None:
        self.pose_pub.publish(self._pose_stamped(stamp, "arm"))
        self.js_pub.publish(self._joint_state_msg(stamp, ARM_JOINTS,
                                                  [f"{self.arm_id}_joint{i}" for i in range(1, 8)]))
        half = self.scene.finger_width() / 2
        js = JointState()
        js.header.stamp = stamp
        js.name = [f"{self.arm_id}_finger_joint1", f"{self.arm_id}_finger_joint2"]
        js.position = [half, half]
        self.finger_pub.publish(js)


def main(args=None) -> int:
    return run(FrankaTwin, args)


if __name__ == "__main__":
    raise SystemExit(main())
