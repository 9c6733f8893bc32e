"""LaWAM model core (ROS-free): DINOv3 features, latent action model with LaWM, Qwen3-VL prior,
Alternate-DiT flow-matching action expert. The subgoal heatmap renderer is lawam_policy.runtime.heatmap."""
from .action_codec import compute_stats
from .config import LaWAMConfig
from .policy import ActionChunkPrediction, LaWAMPolicy

__all__ = ["LaWAMConfig", "LaWAMPolicy", "ActionChunkPrediction", "compute_stats"]
