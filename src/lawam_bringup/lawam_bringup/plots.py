"""Small PIL-only renderings for demo outputs (no plotting library needed on a robot PC)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"x": (220, 60, 60), "y": (60, 160, 60), "z": (60, 90, 220)}


def save_video(path: str, frames: list[np.ndarray], fps: float) -> None:
    """MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg) of equally sized RGB frames."""
    import imageio.v2 as imageio
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for frame in frames:
            writer.append_data(frame)


def save_trajectory_png(path: str, eef: list[tuple[float, float, float, float]], seam_times: list[float],
                        size: tuple[int, int] = (800, 400)) -> None:
    """EEF x, y, z against time; vertical grey lines where chunks arrived."""
    w, h = size
    margin = 40
    data = np.asarray(eef, dtype=float)
    t = data[:, 0]
    t0, t1 = t.min(), max(t.max(), t.min() + 1e-6)
    lo, hi = data[:, 1:].min(), data[:, 1:].max()
    hi = max(hi, lo + 1e-6)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    px = lambda tt: margin + (tt - t0) / (t1 - t0) * (w - 2 * margin)  # noqa: E731
    py = lambda v: h - margin - (v - lo) / (hi - lo) * (h - 2 * margin)  # noqa: E731
    for s in seam_times:
        if t0 <= s <= t1:
            draw.line([(px(s), margin), (px(s), h - margin)], fill=(200, 200, 200))
    for i, axis in enumerate("xyz"):
        pts = [(px(tt), py(v)) for tt, v in zip(t, data[:, 1 + i])]
        if len(pts) > 1:
            draw.line(pts, fill=COLOURS[axis], width=2)
        draw.text((w - margin + 5, 10 + 14 * i), axis, fill=COLOURS[axis])
    draw.rectangle([margin, margin, w - margin, h - margin], outline=(0, 0, 0))
    draw.text((margin, 10), f"EEF position [{lo:.3f}, {hi:.3f}] m over {t1 - t0:.1f} s; grey: chunk arrivals",
              fill=(0, 0, 0))
    img.save(path)


def save_heatmap_overlay(path: str, heatmap: np.ndarray, image: np.ndarray | None, alpha: float = 0.5) -> None:
    """The policy's colour-mapped subgoal heatmap, blended over the camera image it belongs to."""
    heat = Image.fromarray(heatmap)
    if image is None:
        heat.save(path)
        return
    base = Image.fromarray(image).convert("RGB")
    Image.blend(base, heat.resize(base.size, Image.NEAREST).convert("RGB"), alpha).save(path)
