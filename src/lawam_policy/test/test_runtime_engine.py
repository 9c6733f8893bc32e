"""Frame synchronisation and the asynchronous inference engine (with a fake predictor and a fake clock)."""
import pathlib
import sys
import threading

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime.bridge_core import BridgeConfig, BridgeCore  # noqa: E402
from lawam_policy.runtime.engine import EngineConfig, InferenceEngine  # noqa: E402
from fake_predictor import FakePredictor  # noqa: E402
from lawam_policy.runtime.safety import SafetyLimits  # noqa: E402
from lawam_policy.runtime.sync import FrameSynchronizer  # noqa: E402


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


# ---- synchroniser -------------------------------------------------------------------------------
def test_freshest_complete_set_within_tolerance():
    s = FrameSynchronizer(["wrist", "main"], tolerance_s=0.02, primary=1)
    assert s.cameras == ["main", "wrist"]
    s.add("main", 1.00, "m1")
    s.add("main", 1.10, "m2")
    assert s.take() is None and s.missing() == ["wrist"]
    s.add("wrist", 1.005, "w1")
    s.add("wrist", 1.15, "w2")  # 50 ms after m2: outside the tolerance
    fs = s.take()
    assert fs.frames == ["m1", "w1"] and fs.stamp == 1.00
    s.add("main", 1.16, "m3")
    fs = s.take()
    assert fs.frames == ["m3", "w2"] and fs.stamp == 1.16
    assert s.dropped == 1  # m2 was never used
    assert s.take() is None  # nothing is reused


def test_never_queues_stale_frames():
    s = FrameSynchronizer(["cam"], history=3, max_age_s=0.5)
    for i in range(10):
        s.add("cam", float(i), i)
    assert s.take(now=9.2).frames == [9]
    assert s.dropped == 9
    s.add("cam", 8.5, "old")  # older than what was used: dropped at once
    assert s.take(now=9.3) is None and s.dropped == 10
    s.add("cam", 10.0, "late")
    assert s.take(now=11.0) is None  # older than max_age_s


# ---- engine ---------------------------------------------------------------------------------------
def make_engine(clock, predictor=None, **cfg):
    sync = FrameSynchronizer(["cam"])
    chunks = []
    pred = predictor or FakePredictor(clock=clock)
    eng = InferenceEngine(pred, sync, clock, lambda c, p: chunks.append(c),
                          EngineConfig(control_rate_hz=10.0, **cfg))
    return eng, sync, chunks, pred


def test_no_task_means_no_inference():
    clock = Clock()
    eng, sync, chunks, pred = make_engine(clock)
    sync.add("cam", 100.0, np.zeros((4, 4, 3), np.uint8))
    assert not eng.step()
    assert eng.status()["state"] == "waiting_for_task" and "no task" in eng.status()["detail"]
    eng.set_task("   ")
    assert not eng.step() and not pred.calls
    eng.set_task("pick the cube")
    eng.set_enabled(False)
    assert not eng.step() and eng.state == "paused"
    eng.set_enabled(True)
    assert eng.step() and chunks[0].obs_stamp == 100.0 and pred.calls[0][1] == "pick the cube"


def test_chunks_are_stamped_with_observation_time_and_trigger_uses_measured_latency():
    clock = Clock(100.0)

    class SlowPredictor(FakePredictor):
        def predict_chunk(self, images, *a, **k):
            clock.t += 0.3  # the inference takes 0.3 s of clock time
            return super().predict_chunk(images, *a, **k)

    eng, sync, chunks, _ = make_engine(clock, SlowPredictor(clock=clock), latency_margin_s=0.05,
                                       initial_latency_s=0.1)
    eng.set_task("go")
    sync.add("cam", 99.98, "f0")
    assert eng.step()
    c = chunks[0]
    assert c.obs_stamp == 99.98 and c.chunk_id == 1 and eng.last_latency_s == pytest.approx(0.3)
    end = 99.98 + 1.1  # 12 steps at 10 Hz
    assert eng.chunk_end() == pytest.approx(end)
    # next inference is due once the remaining time drops to latency (0.3) + margin (0.05) ...
    t = clock.t
    while t < end:
        sync.add("cam", t, "f")
        clock.t = t
        if eng.step():
            break
        t += 0.01
    # (+ the camera's frame period, here ~10 ms, because a fresh frame has to arrive first)
    lead = 0.35 + eng.sync.frame_interval_s
    assert 0.009 < eng.sync.frame_interval_s < 0.02
    assert lead - 0.0101 < end - t <= lead + 1e-9
    assert chunks[1].obs_stamp == pytest.approx(t)


def test_no_fresh_frame_no_inference_and_reset():
    clock = Clock()
    eng, sync, chunks, pred = make_engine(clock)
    eng.set_task("go")
    sync.add("cam", 100.0, "a")
    assert eng.step()
    clock.t = 101.5  # the chunk ran out, but there is no newer frame: wait, do not reuse
    assert not eng.step()
    sync.add("cam", 101.4, "b")
    assert eng.step() and chunks[-1].obs_stamp == 101.4
    eng.reset()
    assert eng.chunk_end() is None


# Regression (lawam-eval through the full system): an inference running while the episode was reset finished
# afterwards; its chunk, planned on the previous episode's last frame, was published to the bridge (refused as
# too_far_from_measured, or executed from the new start) and became the running chunk the next inference waited
# for. The same holds for a chunk computed for an instruction that was replaced, and for old-scene frames that
# arrive after the reset.
@pytest.mark.parametrize("interruption", ["reset", "new_task"])
def test_a_chunk_whose_inference_spans_a_reset_or_task_change_is_discarded(interruption):
    clock = Clock(100.0)
    eng = None

    class InterruptedPredictor(FakePredictor):
        interrupt = False

        def predict_chunk(self, images, *a, **k):
            if self.interrupt:  # what a service callback does while the worker is inside the model
                self.interrupt = False
                clock.t = 101.2
                eng.reset() if interruption == "reset" else eng.set_task("put the green cube in the bowl")
            return super().predict_chunk(images, *a, **k)

    eng, sync, chunks, pred = make_engine(clock, InterruptedPredictor(clock=clock), inpaint_prev_actions=True)
    eng.set_task("put the red cube in the bowl")
    sync.add("cam", 100.0, "old scene")
    assert eng.step() and len(chunks) == 1  # the running chunk, 100.0 .. 101.1
    first_end = eng.chunk_end()
    clock.t = 101.06
    sync.add("cam", 100.95, "old scene, later")
    pred.interrupt = True
    assert not eng.step() and len(chunks) == 1  # computed across the interruption: discarded, not published
    assert eng.events["stale_chunk_discarded"] == 1
    if interruption == "reset":
        assert eng.chunk_end() is None
        sync.add("cam", 101.1, "old scene, delivered late")  # stamped before the reset at 101.2: dropped
        assert not eng.step() and len(pred.calls) == 2
        sync.add("cam", 101.3, "new scene")
        assert eng.step() and chunks[-1].obs_stamp == 101.3
        assert pred.calls[-1][2]["prev_actions"] is None  # the old episode's chunk is not inpainted from
    else:
        assert eng.chunk_end() == first_end  # the motion continues: only the old task's new chunk is dropped
        sync.add("cam", 101.15, "same scene")
        assert eng.step() and pred.calls[-1][1] == "put the green cube in the bowl"


def test_frames_and_poses_stamped_on_another_clock_are_not_judged_against_a_reset():
    """A camera or robot whose clock is not the node's (unsynchronised, time since boot) must not be locked
    out after a reset: only stamps just before the reset are taken as the old scene's."""
    clock = Clock(1_700_000_000.0)
    eng, sync, chunks, _ = make_engine(clock)
    eng.set_task("go")
    eng.reset()
    sync.add("cam", 1_700_000_000.0 - 0.05, "in flight from before the reset")
    assert not eng.step()
    sync.add("cam", 1234.5, "a camera stamping time since boot")
    assert eng.step() and chunks[-1].obs_stamp == 1234.5
    core = BridgeCore(BridgeConfig(limits=SafetyLimits()))
    core.reset(now=1_700_000_000.0)
    assert not core.on_measured_pose(0, [0.5, 0.0, 0.4], [1.0, 0, 0, 0], stamp=1_700_000_000.0 - 0.05)
    assert core.on_measured_pose(0, [0.5, 0.0, 0.4], [1.0, 0, 0, 0], stamp=1234.5)


def test_inpainting_passes_remaining_steps_relative_to_the_new_observation():
    clock = Clock()
    eng, sync, chunks, pred = make_engine(clock, inpaint_prev_actions=True)
    eng.set_task("go")
    sync.add("cam", 100.0, "a")
    eng.step()
    assert pred.calls[0][2]["prev_actions"] is None and pred.calls[0][2]["prev_timestamps"] is None
    clock.t = 101.06  # due: 40 ms left of the running chunk, below measured latency (0) + margin (50 ms)
    sync.add("cam", 100.95, "b")
    assert eng.step()
    prev = pred.calls[1][2]["prev_actions"]
    ts = pred.calls[1][2]["prev_timestamps"]
    # the old chunk (steps 100.0 .. 101.1) resampled on the new grid 100.95 + k / 10: k = 0, 1
    assert np.allclose(ts, [0.0, 0.1])
    old = chunks[0].to_actions()
    assert np.allclose(prev[0, :3], (old[9, :3] + old[10, :3]) / 2)  # halfway between 100.9 and 101.0
    assert np.allclose(prev[1, :3], (old[10, :3] + old[11, :3]) / 2)
    assert np.allclose(np.linalg.norm(prev[:, 3:7], axis=1), 1.0)
    assert np.array_equal(prev[:, 7], old[[9, 10], 7])  # gripper stepwise


def test_predictor_errors_are_reported_and_the_worker_survives():
    clock = Clock()

    class Broken:
        def predict_chunk(self, *a, **k):
            raise RuntimeError("boom")

    eng, sync, chunks, _ = make_engine(clock, Broken())
    logs = []
    eng.log = lambda level, msg: logs.append(msg)
    eng.set_task("go")
    sync.add("cam", 100.0, "a")
    assert not eng.step()
    assert eng.state == "error" and "boom" in eng.last_error and len(logs) == 1


def test_worker_thread_with_latency_compensated_execution():
    """Injected inference delay: the bridge executes each chunk from 'now', never from its step 0."""
    clock = Clock(0.0)
    lock = threading.Lock()
    received = []
    pred = FakePredictor(clock=clock, latency_s=0.0)

    class Delayed(FakePredictor):
        def predict_chunk(self, images, *a, **k):
            out = pred.predict_chunk(images, *a, **k)
            with lock:
                clock.t += 0.25  # injected 250 ms inference delay on the clock
            return out

    sync = FrameSynchronizer(["cam"])
    eng = InferenceEngine(Delayed(), sync, clock, lambda c, p: received.append((clock.t, c)),
                          EngineConfig(control_rate_hz=10.0, latency_margin_s=0.1, poll_period_s=0.001))
    eng.set_task("go")
    pred.obs_time = None
    sync.add("cam", 0.0, "f")
    eng.start()
    try:
        for _ in range(2000):
            if received:
                break
            threading.Event().wait(0.001)
    finally:
        eng.stop()
    arrival, chunk = received[0]
    assert arrival == pytest.approx(0.25) and chunk.obs_stamp == 0.0
    core = BridgeCore(BridgeConfig(limits=SafetyLimits(startup_ramp_s=0.0)))
    start = pred.pose_at(0.0)
    core.on_measured_pose(0, pred.pose_at(0.25), [1, 0, 0, 0])
    core.tick(arrival)
    assert core.on_chunk(chunk, arrival)
    r = core.tick(arrival + 0.001)
    # the first command is where the chunk is at 0.251 s, not its step 0 (where it was at obs time)
    assert np.allclose(r.commands[0].position, pred.pose_at(0.251), atol=2e-4)
    assert np.linalg.norm(r.commands[0].position - start) > 1e-3


def test_prev_on_grid_window_and_expiry():
    from lawam_policy.runtime.engine import prev_on_grid
    clock = Clock()
    eng, sync, chunks, pred = make_engine(clock)
    eng.set_task("go")
    sync.add("cam", 100.0, "a")
    eng.step()
    old = chunks[0]  # steps at 100.0 .. 101.1
    actions, ts = prev_on_grid(old, 100.33, 10.0, max_offset_s=0.25)
    assert np.allclose(ts, [0.0, 0.1, 0.2])
    assert np.allclose(actions[1, :3], 0.7 * old.positions[0, 4] + 0.3 * old.positions[0, 5])  # at 100.43
    assert prev_on_grid(old, 101.2, 10.0) is None
