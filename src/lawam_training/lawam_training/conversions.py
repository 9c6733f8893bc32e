"""Message -> array conversions shared by the live recorder (rclpy messages) and the bag importer (rosbags
messages): both expose the same field names, so the functions only rely on attributes."""
from __future__ import annotations

import io
import math

import numpy as np

from lawam_policy.action_layout import ActionLayout


class ConversionError(ValueError):
    pass


def image_to_rgb(msg, size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage -> (H, W, 3) uint8 RGB.

    ``size`` = (height, width) resizes (bilinear) when the image differs from it."""
    if hasattr(msg, "encoding"):
        enc = msg.encoding.lower()
        channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3}.get(enc)
        if channels is None:
            raise ConversionError(f"unsupported image encoding {msg.encoding!r} (expected rgb8, bgr8, rgba8, "
                                  "bgra8 or mono8)")
        h, w, step = int(msg.height), int(msg.width), int(msg.step)
        buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
        if buf.size < h * step or step < w * channels:
            raise ConversionError(f"image data has {buf.size} bytes, expected {h} rows of {step} bytes")
        img = buf[:h * step].reshape(h, step)[:, :w * channels].reshape(h, w, channels)
        if channels == 1:
            img = np.repeat(img, 3, axis=2)
        elif enc.startswith("bgr"):
            img = img[:, :, 2::-1]
        else:
            img = img[:, :, :3]
    else:  # CompressedImage
        from PIL import Image
        img = np.asarray(Image.open(io.BytesIO(bytes(memoryview(msg.data)))).convert("RGB"))
    if size is not None and img.shape[:2] != tuple(size):
        from PIL import Image
        img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size[1], size[0]), Image.BILINEAR))
    return np.ascontiguousarray(img)


def pose_to_vec(pose) -> np.ndarray:
    """geometry_msgs/Pose (or PoseStamped) -> (7,) x, y, z, qx, qy, qz, qw with a unit quaternion."""
    pose = getattr(pose, "pose", pose)
    p, q = pose.position, pose.orientation
    quat = np.array([q.x, q.y, q.z, q.w], np.float64)
    n = np.linalg.norm(quat)
    if not math.isfinite(n) or n < 1e-6:
        raise ConversionError(f"pose has an invalid quaternion {quat.tolist()}")
    vec = np.concatenate([[p.x, p.y, p.z], quat / n])
    if not np.all(np.isfinite(vec)):
        raise ConversionError(f"pose is not finite: {vec.tolist()}")
    return vec


def gripper_from_joint_state(msg, max_width: float = 0.08) -> float:
    """Franka hand sensor_msgs/JointState: each finger joint is at width / 2 -> opening width / max_width."""
    pos = list(msg.position)
    names = list(msg.name)
    fingers = [p for n, p in zip(names, pos) if "finger" in n] or pos[:2]
    if not fingers:
        raise ConversionError("gripper joint state has no positions")
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
        out[sl.start:sl.start + 7] = pose_to_vec(traj.poses[0])
        out[sl.start + 7] = float(np.clip(traj.gripper_openings[0], 0.0, 1.0))
    return out


def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9
