"""Subgoal heatmap (paper, Appendix B), without torch: cosine similarity of one current patch feature against
every predicted subgoal patch as a side x side map, its colouring for RViz, and its overlay on a camera image.
The one renderer of the workspace (the policy node and the model's users share it)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def similarity_map(current_features, subgoal, patch) -> np.ndarray:
    """current_features, subgoal: (N, C) features, N a square (196 = 14x14); patch: flat index in [0, N) or
    (row, col). Returns (side, side) float32 cosine similarities in [-1, 1]. Raises ValueError for other
    shapes or a patch outside the grid."""
    cur = np.asarray(current_features, dtype=np.float64)
    sub = np.asarray(subgoal, dtype=np.float64)
    side = int(round(np.sqrt(len(cur)))) if cur.ndim == 2 else 0
    if cur.ndim != 2 or cur.shape != sub.shape or side * side != len(cur):
        raise ValueError(f"need two (N, C) feature sets on a square grid; got {cur.shape} and {sub.shape}")
    if isinstance(patch, (tuple, list)):
        row, col = patch
        if not (0 <= row < side and 0 <= col < side):
            raise ValueError(f"patch {tuple(patch)} outside the {side}x{side} grid")
        patch = row * side + col
    if not 0 <= int(patch) < len(cur):
        raise ValueError(f"patch {patch} outside [0, {len(cur)})")
    q = cur[int(patch)]
    sim = sub @ q / (np.linalg.norm(sub, axis=1) * np.linalg.norm(q) + 1e-12)
    return sim.reshape(side, side).astype(np.float32)


def _colours(values) -> np.ndarray:
    """Map -> (h, w, 3) floats in [0, 1]: min-max scaled, blue (low) to red (high). ValueError if not a finite
    2-D array."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or not np.isfinite(v).all():
        raise ValueError("heatmap must be a finite 2-D array")
    span = v.max() - v.min()
    v = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    return np.stack([np.clip(2 * v - 0.5, 0, 1), np.clip(1.5 - np.abs(3 * v - 1.5), 0, 1),
                     np.clip(1.5 - 2 * v, 0, 1)], axis=-1)


def colorize(values, size: int = 224) -> np.ndarray:
    """(side, side) map -> (size, size, 3) uint8 RGB, nearest-neighbour upsampled (one block per patch)."""
    rgb = _colours(values)
    rep = max(1, size // rgb.shape[0])
    return (np.repeat(np.repeat(rgb, rep, axis=0), rep, axis=1) * 255).round().astype(np.uint8)


def render_heatmap(image_uint8, heatmap, alpha: float = 0.5) -> np.ndarray:
    """The coloured map, upsampled bilinearly to the image and blended over it with weight `alpha` ->
    HxWx3 uint8. Raises ValueError unless the image is HxWx3 uint8 and the map a finite 2-D array."""
    img = np.asarray(image_uint8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8, got {img.shape} {img.dtype}")
    rgb = (_colours(heatmap) * 255).round().astype(np.uint8)
    colour = np.asarray(Image.fromarray(rgb).resize((img.shape[1], img.shape[0]), Image.BILINEAR), np.float32)
    return (img.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def render_heatmap_png(image_uint8, heatmap, alpha: float = 0.5) -> bytes:
    """PNG-encoded render_heatmap overlay."""
    buf = io.BytesIO()
    Image.fromarray(render_heatmap(image_uint8, heatmap, alpha)).save(buf, format="PNG")
    return buf.getvalue()
