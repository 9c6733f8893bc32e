"""The demo summary counts what the system reported, once per event."""
import numpy as np

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
    eef = [(t * 0.1, 0.3 + 0.01 * t, 0.0, 0.5) for t in range(50)]
    save_trajectory_png(str(tmp_path / "t.png"), eef, [1.0, 2.0], size=(200, 100))
    img = np.asarray(Image.open(tmp_path / "t.png"))
    assert img.shape == (100, 200, 3) and (img != 255).any()


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
