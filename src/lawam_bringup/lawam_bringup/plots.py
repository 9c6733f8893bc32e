"""Demo outputs: the camera video, the EEF trajectory plot (matplotlib) and the subgoal heatmap overlay."""
from __future__ import annotations

import numpy as np
from PIL import Image

def save_video(path: str, frames: list[np.ndarray], fps: float) -> None:
    """MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg) of equally sized RGB frames."""
    import imageio.v2 as imageio
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for frame in frames:
            writer.append_data(frame)


def save_trajectory_png(path: str, eef: list, chunk_times: list[float], targets: list = (), commands: list = (),
                        success_times: list[float] = (), title: str = "") -> None:
    """EEF position (m, robot base frame) against time (s) with matplotlib, one panel per axis x, y, z.

    eef, targets, commands: (t, x, y, z) samples, t in seconds of the node's clock (sim time in simulation);
    eef is the measured pose, targets the waypoints of the policy's chunks (obs stamp + time offset, from
    /lawam/action_chunk), commands what the bridge streamed to the controller. chunk_times: chunk arrivals
    (vertical grey lines); success_times: when the task was reported solved (vertical green lines).
    Time 0 is the first measured EEF sample. Raises ValueError when eef is empty."""
    import matplotlib
    matplotlib.use("Agg")  # headless: robot PCs and CI have no display
    import matplotlib.pyplot as plt

    if not len(eef):
        raise ValueError("no EEF samples to plot")
    measured = np.asarray(eef, dtype=float)
    t0 = measured[0, 0]
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(10, 7), constrained_layout=True)
    for i, (ax, axis) in enumerate(zip(axes, "xyz")):
        for k, t in enumerate(chunk_times):
            ax.axvline(t - t0, color="0.85", lw=0.8, zorder=0, label="chunk arrival" if k == 0 else None)
        for k, t in enumerate(success_times):
            ax.axvline(t - t0, color="tab:green", lw=2, label="success" if k == 0 else None)
        if len(targets):
            tg = np.asarray(targets, dtype=float)
            ax.plot(tg[:, 0] - t0, tg[:, 1 + i], ".", ms=3, color="tab:orange", label="chunk targets")
        if len(commands):
            cm = np.asarray(commands, dtype=float)
            ax.plot(cm[:, 0] - t0, cm[:, 1 + i], "-", lw=1, color="tab:blue", alpha=0.7, label="commands")
        ax.plot(measured[:, 0] - t0, measured[:, 1 + i], "-", lw=2, color="black", label="measured EEF")
        ax.set_ylabel(f"{axis} (m)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small", ncols=3)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or "EEF position in the robot base frame")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_heatmap_overlay(path: str, heatmap: np.ndarray, image: np.ndarray | None, alpha: float = 0.5) -> None:
    """The policy's colour-mapped subgoal heatmap, blended over the camera image it belongs to."""
    heat = Image.fromarray(heatmap)
    if image is None:
        heat.save(path)
        return
    base = Image.fromarray(image).convert("RGB")
    Image.blend(base, heat.resize(base.size, Image.NEAREST).convert("RGB"), alpha).save(path)
