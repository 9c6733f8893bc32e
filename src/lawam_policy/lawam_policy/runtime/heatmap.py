"""Subgoal heatmap for RViz without torch: cosine similarity of one current patch feature against every
predicted subgoal patch (paper, Appendix B), coloured and upsampled to an RGB image."""
from __future__ import annotations

import numpy as np


def similarity_map(current_features, subgoal, patch: int) -> np.ndarray:
    """(N, C) and (N, C) features, N a square number -> (side, side) cosine similarities."""
    cur = np.asarray(current_features, dtype=float)
    sub = np.asarray(subgoal, dtype=float)
    side = int(round(np.sqrt(len(cur))))
    if cur.shape != sub.shape or side * side != len(cur) or not 0 <= patch < len(cur):
        raise ValueError(f"need two (N, C) feature sets on a square grid and 0 <= patch < N; got {cur.shape}, "
                         f"{sub.shape}, patch {patch}")
    q = cur[patch]
    sim = sub @ q / (np.linalg.norm(sub, axis=1) * np.linalg.norm(q) + 1e-12)
    return sim.reshape(side, side)


def colorize(values: np.ndarray, size: int = 224) -> np.ndarray:
    """Min-max scaled map -> (size, size, 3) uint8, blue (low) to red (high), nearest-neighbour upsampled."""
    v = np.asarray(values, dtype=float)
    span = v.max() - v.min()
    v = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    rgb = np.stack([np.clip(2 * v - 0.5, 0, 1), np.clip(1.5 - np.abs(3 * v - 1.5), 0, 1),
                    np.clip(1.5 - 2 * v, 0, 1)], axis=-1)
    rep = max(1, size // v.shape[0])
    return (np.repeat(np.repeat(rgb, rep, axis=0), rep, axis=1) * 255).round().astype(np.uint8)
