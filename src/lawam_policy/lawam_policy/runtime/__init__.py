"""ROS-free deployment runtime: chunk execution in physical time, interpolation, safety, gripper goals,
image decoding, frame synchronisation and asynchronous inference. The rclpy nodes in ``lawam_policy.nodes``
are thin adapters around these classes; nothing here imports rclpy (or torch)."""
from .bridge_core import ArmCommand, BridgeConfig, BridgeCore, TickResult
from .chunk import Chunk, ChunkError
from .engine import EngineConfig, InferenceEngine
from .executor import ChunkExecutor
from .gripper import Cancel, GraspGoal, GripperGoalConfig, GripperGoalLogic, MoveGoal, opening_to_width
from .images import (BadImage, ImageError, UnsupportedEncoding, check_image, decode_compressed, decode_image,
                     decode_raw)
from .interpolation import ArmTrack
from .predictor import ChunkPrediction, Predictor
from .safety import ArmSafety, SafetyLimits
from .sync import FrameSet, FrameSynchronizer

__all__ = [
    "ArmCommand", "ArmSafety", "ArmTrack", "BadImage", "BridgeConfig", "BridgeCore", "Cancel", "Chunk",
    "ChunkError", "ChunkPrediction", "ChunkExecutor", "EngineConfig", "FrameSet", "FrameSynchronizer", "GraspGoal",
    "GripperGoalConfig", "GripperGoalLogic", "ImageError", "InferenceEngine", "MoveGoal", "Predictor",
    "SafetyLimits", "TickResult", "UnsupportedEncoding", "check_image", "decode_compressed", "decode_image",
    "decode_raw", "opening_to_width"
]
