"""The demo summary counts what the system reported, once per event."""
import numpy as np
import pytest

from lawam_bringup.demo_monitor import DemoRecord
from lawam_bringup.plots import save_video, save_heatmap_overlay, save_trajectory_png


def _bridge(chunks, commands, latency, seam, rejections=None):
    return {"commands_sent": commands, "chunks_received": chunks, "max_seam_step_m": seam, "latency_ms": latency,
            "holds": {"no_chunk": 2}, "clamps": {"linear_speed": 1}, "rejections": rejections or {}}


def test_summary_counts_each_event_once():
    r = DemoRecord("franka_pick_place")
    for t in (1.0, 1.5, 2.0):
        r.on_chunk(t)
    # repeated status messages with the same chunk count add no latency sample
    r.on_policy_status(1, 30.0)
    r.on_policy_status(1, 30.0)
    r.on_policy_status(2, 50.0)
    r.on_bridge_status("franka_bridge", _bridge(1, 100, 80.0, 0.001))
    r.on_bridge_status("franka_bridge", _bridge(1, 150, 80.0, 0.001))
    r.on_bridge_status("franka_bridge", _bridge(2, 300, 120.0, 0.004, {"non_finite": 2, "too_far": 1}))
    for s in (False, True, True, False, True):
        r.on_success(s)
    for seed in (1000, 1000, 1001, 1001):
        r.on_twin_stats({"seed": seed, "refusals": {"workspace": seed - 1000}})
    s = r.summary()
    assert s["system"] == "franka_pick_place" and s["chunks"] == 3 and s["commands"] == 300
    assert s["inference_latency_ms"]["mean"] == 40.0 and s["inference_latency_ms"]["p50"] == 40.0
    assert s["e2e_latency_ms"]["mean"] == 100.0
    assert s["max_seam_step_m"] == 0.004 and s["safety_rejections"] == 3
    assert s["successes"] == 2 and s["episodes"] == 2 and s["twin_refusals"] == 1


def test_empty_run_reports_nulls_not_crashes():
    s = DemoRecord("quanta_towel_fold").summary()
    assert s["chunks"] == 0 and s["episodes"] == 0 and s["inference_latency_ms"]["mean"] is None and s["max_seam_step_m"] is None


def test_plots_write_images(tmp_path):
    from PIL import Image
    frames = [np.full((32, 32, 3), i * 40, np.uint8) for i in range(4)]
    save_video(str(tmp_path / "c.mp4"), frames, fps=5)
    import imageio.v2 as imageio
    decoded = imageio.mimread(str(tmp_path / "c.mp4"))
    assert len(decoded) == 4 and decoded[0].shape == (32, 32, 3)
    assert abs(int(decoded[3].mean()) - 120) <= 3 and abs(int(decoded[0].mean())) <= 3


def test_heatmap_is_blended_over_the_camera_image(tmp_path):
    from PIL import Image
    heat = np.zeros((14, 14, 3), np.uint8)
    heat[:, :7] = (255, 0, 0)
    image = np.full((56, 56, 3), 100, np.uint8)
    save_heatmap_overlay(str(tmp_path / "h.png"), heat, image)
    out = np.asarray(Image.open(tmp_path / "h.png"))
    assert out.shape == (56, 56, 3)
    assert tuple(out[0, 0]) == (177, 50, 50) and tuple(out[0, 55]) == (50, 50, 50)


def test_eef_speed_over_a_window():
    r = DemoRecord("franka_pick_place")
    assert r.eef_speed(0.3) == 0.0
    for k in range(11):  # 0.1 m/s along x for 1 s, sampled at 10 Hz, then at rest
        r.eef.append((k * 0.1, 0.5 + 0.01 * k, 0.0, 0.3))
    assert abs(r.eef_speed(0.3) - 0.1) < 1e-9
    for k in range(11, 16):
        r.eef.append((k * 0.1, 0.6, 0.0, 0.3))
    assert r.eef_speed(0.3) == 0.0


def test_trajectory_plot_has_three_labelled_axes_in_metres_and_seconds(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    saved = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path, **kw: saved.update(fig=fig, path=path))
    eef = [(10 + t * 0.1, 0.3 + 0.01 * t, 0.0, 0.5) for t in range(50)]
    targets = [(10.5 + t * 0.1, 0.31 + 0.01 * t, 0.0, 0.5) for t in range(12)]
    commands = [(10 + t * 0.01, 0.3 + 0.001 * t, 0.0, 0.5) for t in range(500)]
    save_trajectory_png(str(tmp_path / "t.png"), eef, [11.0, 12.0], targets, commands, [13.5], title="demo")
    axes = saved["fig"].axes
    assert [a.get_ylabel() for a in axes] == ["x (m)", "y (m)", "z (m)"] and axes[-1].get_xlabel() == "time (s)"
    labels = axes[0].get_legend_handles_labels()[1]
    assert set(labels) == {"chunk arrival", "success", "chunk targets", "commands", "measured EEF"}
    x = {line.get_label(): line for line in axes[0].get_lines()}
    # time 0 is the first EEF sample; x is the first panel's data
    assert x["measured EEF"].get_xdata()[0] == 0 and x["measured EEF"].get_ydata()[-1] == pytest.approx(0.79)
    assert x["success"].get_xdata()[0] == pytest.approx(3.5) and x["chunk targets"].get_xdata()[0] == 0.5
    monkeypatch.undo()
    save_trajectory_png(str(tmp_path / "t.png"), eef, [])  # measured only: still a PNG
    assert np.asarray(Image.open(tmp_path / "t.png")).ndim == 3
    with pytest.raises(ValueError, match="no EEF samples"):
        save_trajectory_png(str(tmp_path / "e.png"), [], [])


def test_success_times_are_recorded_once_per_edge():
    r = DemoRecord("franka_pick_place")
    for t, s in ((1.0, False), (2.0, True), (2.1, True), (3.0, False), (4.0, True)):
        r.on_success(s, t)
    assert r.success_times == [2.0, 4.0] and r.summary()["successes"] == 2
