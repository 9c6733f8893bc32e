"""Message -> array conversions shared by the live recorder (rclpy messages) and the bag importer (rosbags
messages): both expose the same field names, so the functions only rely on attributes.

Every numeric field that goes into a dataset is checked finite here (:func:`require_finite`; ConversionError
names the field, the callers add topic and time), and images are decoded by the policy's decoder
(:mod:`lawam_policy.runtime.images`), so the recorder, the bag import and the policy node agree."""
from __future__ import annotations

import math

import numpy as np

from lawam_policy.action_layout import ActionLayout
from lawam_policy.embodiments import FRANKA_HAND_MAX_WIDTH_M
from lawam_policy.runtime.images import ImageError, decode_image


class ConversionError(ValueError):
    pass


def image_to_rgb(msg, size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB through the one decoder
    (:mod:`lawam_policy.runtime.images`, which the policy node uses too: same encodings, same refusals).

    ``size`` = (height, width) resizes (bilinear) when the image differs from it. Raises ConversionError."""
    try:
        img = decode_image(msg)
    except ImageError as e:
        raise ConversionError(str(e)) from None
    if size is not None and img.shape[:2] != tuple(size):
        from PIL import Image
        img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size[1], size[0]), Image.BILINEAR))
    return np.ascontiguousarray(img)


def require_finite(values: dict) -> None:
    """{field name: number} -> ConversionError naming every non-finite field (NaN, inf), else nothing.

    Every numeric field a conversion puts into a dataset goes through here; callers add topic and time."""
    bad = [f"{name} = {float(v)}" for name, v in values.items() if not math.isfinite(float(v))]
    if bad:
        raise ConversionError(f"non-finite {', '.join(bad)}")


def pose_to_vec(pose) -> np.ndarray:
    """geometry_msgs/Pose (or PoseStamped) -> (7,) x, y, z, qx, qy, qz, qw with a unit quaternion."""
    pose = getattr(pose, "pose", pose)
    p, q = pose.position, pose.orientation
    require_finite({f"pose.position.{a}": getattr(p, a) for a in "xyz"}
                   | {f"pose.orientation.{a}": getattr(q, a) for a in "xyzw"})
    quat = np.array([q.x, q.y, q.z, q.w], np.float64)
    n = np.linalg.norm(quat)
    if not math.isfinite(n) or n < 1e-6:
        raise ConversionError(f"pose has an invalid quaternion {quat.tolist()}")
    return np.concatenate([[p.x, p.y, p.z], quat / n])


def gripper_from_joint_state(msg, max_width: float = FRANKA_HAND_MAX_WIDTH_M) -> float:
    """Franka hand sensor_msgs/JointState: each finger joint is at width / 2 -> opening width / max_width."""
    pos = list(msg.position)
    names = list(msg.name)
    used = [i for i, n in enumerate(names[:len(pos)]) if "finger" in n] or list(range(min(2, len(pos))))
    if not used:
        raise ConversionError("gripper joint state has no positions")
    require_finite({f"position[{i}]" + (f" ({names[i]})" if i < len(names) else ""): pos[i] for i in used})
    fingers = [pos[i] for i in used]
    width = 2.0 * float(np.mean(fingers))
    return float(np.clip(width / max_width, 0.0, 1.0))


def chunk_first_step(msg, layout: ActionLayout) -> np.ndarray:
    """lawam_msgs/ActionChunk -> (8 * arms,) first step, arms in the layout's order."""
    names = list(msg.arm_names) or (list(layout.arms) if len(msg.arms) == len(layout.arms) else [])
    if len(names) != len(msg.arms) or set(names) != set(layout.arms):
        raise ConversionError(f"command chunk has arms {names}, the layout {layout.embodiment!r} expects "
                              f"{list(layout.arms)}")
    out = np.empty(layout.dim, np.float64)
    for name, traj in zip(names, msg.arms):
        if len(traj.poses) == 0 or len(traj.gripper_openings) == 0:
            raise ConversionError(f"command chunk arm {name!r} has no steps")
        sl = layout.arm_slice(name)
        try:
            out[sl.start:sl.start + 7] = pose_to_vec(traj.poses[0])
            require_finite({"gripper_openings[0]": traj.gripper_openings[0]})
        except ConversionError as e:
            raise ConversionError(f"arm {name!r} step 0: {e}") from None
        out[sl.start + 7] = float(np.clip(traj.gripper_openings[0], 0.0, 1.0))
    return out
