"""Subgoal heatmap (paper Appendix B): cosine similarity of one current patch feature against every predicted
subgoal patch, as a 14x14 map, and its PNG overlay on the camera image (PIL only)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def subgoal_heatmap(current_features, subgoal, patch_index) -> np.ndarray:
    """current_features, subgoal: (N, C) with N a square (196); patch_index: int or (row, col).

    Returns (side, side) float32 cosine similarities in [-1, 1].
    """
    cur = np.asarray(current_features, dtype=np.float64)
    sub = np.asarray(subgoal, dtype=np.float64)
    if cur.ndim != 2 or cur.shape != sub.shape:
        raise ValueError(f"current_features and subgoal must both be (N, C), got {cur.shape} and {sub.shape}")
    side = int(round(np.sqrt(cur.shape[0])))
    if side * side != cur.shape[0]:
        raise ValueError(f"{cur.shape[0]} patches do not form a square grid")
    if isinstance(patch_index, (tuple, list)):
        row, col = patch_index
        if not (0 <= row < side and 0 <= col < side):
            raise ValueError(f"patch {patch_index} outside the {side}x{side} grid")
        patch_index = row * side + col
    if not 0 <= int(patch_index) < cur.shape[0]:
        raise ValueError(f"patch_index {patch_index} outside [0, {cur.shape[0]})")
    q = cur[int(patch_index)]
    sim = sub @ q / (np.linalg.norm(sub, axis=1) * np.linalg.norm(q) + 1e-12)
    return sim.reshape(side, side).astype(np.float32)


def _colormap(v: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8, a blue-cyan-yellow-red ramp (jet-like)."""
    v = np.clip(v, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def render_heatmap(image_uint8, heatmap, alpha: float = 0.5) -> np.ndarray:
    """Overlay -> HxWx3 uint8 array. The heatmap is min-max scaled, upsampled bilinearly to the image."""
    img = np.asarray(image_uint8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8, got {img.shape} {img.dtype}")
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2 or not np.isfinite(hm).all():
        raise ValueError("heatmap must be a finite 2-D array")
    span = float(hm.max() - hm.min())
    hm = (hm - hm.min()) / span if span > 0 else np.zeros_like(hm)
    up = Image.fromarray(hm).resize((img.shape[1], img.shape[0]), Image.BILINEAR)
    colour = _colormap(np.asarray(up))
    return (img.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).round().astype(np.uint8)


def render_heatmap_png(image_uint8, heatmap, alpha: float = 0.5) -> bytes:
    """PNG-encoded overlay of `heatmap` on `image_uint8`."""
    buf = io.BytesIO()
    Image.fromarray(render_heatmap(image_uint8, heatmap, alpha)).save(buf, format="PNG")
    return buf.getvalue()
