"""LaWAM model core (ROS-free): DINOv3 features, latent action model with LaWM, Qwen3-VL prior,
Alternate-DiT flow-matching action expert."""
from .action_codec import compute_stats
from .config import LaWAMConfig
from .heatmap import render_heatmap, render_heatmap_png, subgoal_heatmap
from .policy import ActionChunkPrediction, LaWAMPolicy

__all__ = ["LaWAMConfig", "LaWAMPolicy", "ActionChunkPrediction", "subgoal_heatmap", "render_heatmap",
           "render_heatmap_png", "compute_stats"]
