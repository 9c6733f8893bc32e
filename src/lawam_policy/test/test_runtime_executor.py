"""Chunk execution in physical time: due times, latency compensation, merging at seams."""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.runtime.chunk import Chunk, ChunkError  # noqa: E402
from lawam_policy.runtime.executor import ChunkExecutor  # noqa: E402

DOWN = np.array([1.0, 0.0, 0.0, 0.0])


def make_chunk(obs_stamp, positions, rate=10.0, chunk_id=1, grippers=None):
    """One-arm chunk; positions (H, 3)."""
    positions = np.asarray(positions, float)
    h = len(positions)
    grippers = np.ones(h) if grippers is None else np.asarray(grippers, float)
    actions = np.concatenate([positions, np.tile(DOWN, (h, 1)), grippers[:, None]], axis=1)
    return Chunk.from_actions(actions, np.arange(h) / rate, get_layout("franka_panda"), obs_stamp, chunk_id,
                              control_rate_hz=rate, horizon_s=h / rate)


def ramp(x0, n, dx=0.01):
    return np.stack([x0 + dx * np.arange(n), np.zeros(n), np.full(n, 0.4)], axis=1)


def test_step_k_due_at_obs_stamp_plus_offset_plus_delay():
    ex = ChunkExecutor(("arm",), execution_delay_s=0.05, blend_window_s=0.0, interpolation="linear")
    chunk = make_chunk(10.0, ramp(0.5, 12))
    ex.add_chunk(chunk, now=10.0)
    for k in range(12):
        t = 10.0 + k / 10.0 + 0.05
        assert np.allclose(ex.sample(t)[0].position, chunk.positions[0, k])
    assert ex.covers(10.0 + 1.1 + 0.05) and not ex.covers(10.0 + 1.1 + 0.05 + 1e-6)


@pytest.mark.parametrize("latency", [0.0, 0.13, 0.37, 0.8])
def test_latency_compensation_drops_passed_steps(latency):
    """A chunk arriving `latency` after its observation starts where the chunk is *now*, not at step 0."""
    ex = ChunkExecutor(("arm",), blend_window_s=0.0, interpolation="linear")
    chunk = make_chunk(5.0, ramp(0.5, 12))
    now = 5.0 + latency
    acc = ex.add_chunk(chunk, now=now)
    assert acc.dropped_steps == int(np.ceil(latency * 10 - 1e-9))
    assert np.allclose(ex.sample(now)[0].position, [0.5 + 0.1 * latency, 0, 0.4])  # 0.1 m/s ramp


def test_expired_chunk_is_refused():
    ex = ChunkExecutor(("arm",))
    with pytest.raises(ChunkError) as err:
        ex.add_chunk(make_chunk(1.0, ramp(0.5, 12)), now=3.0)
    assert err.value.reason == "stale_chunk"


def test_out_of_order_and_bad_chunks_are_refused():
    ex = ChunkExecutor(("arm",))
    ex.add_chunk(make_chunk(2.0, ramp(0.5, 12)), now=2.0)
    with pytest.raises(ChunkError) as err:
        ex.add_chunk(make_chunk(1.9, ramp(0.5, 12)), now=2.0)
    assert err.value.reason == "out_of_order"
    bad = make_chunk(2.1, ramp(0.5, 12))
    bad.positions[0, 3, 1] = np.nan
    with pytest.raises(ChunkError) as err:
        ex.add_chunk(bad, now=2.1)
    assert err.value.reason == "non_finite"
    with pytest.raises(ChunkError) as err:
        ChunkExecutor(("left", "right")).add_chunk(make_chunk(2.2, ramp(0.5, 12)), now=2.2)
    assert err.value.reason == "bad_layout"


def test_new_chunk_is_blended_without_a_jump():
    """Two chunks 5 cm apart: at the seam the target moves continuously over the blend window."""
    window = 0.2
    ex = ChunkExecutor(("arm",), blend_window_s=window, interpolation="cubic")
    ex.add_chunk(make_chunk(0.0, ramp(0.5, 12, dx=0.0)), now=0.0)
    acc = ex.add_chunk(make_chunk(0.5, ramp(0.5, 12, dx=0.0) + [0, 0.05, 0], chunk_id=2), now=0.6)
    assert acc.blended and acc.dropped_steps == 1
    assert ex.in_seam(0.7) and not ex.in_seam(0.6 + window)
    dt = 0.001
    ts = np.arange(0.6 - 0.05, 0.6 + window + 0.05, dt)
    ys = np.array([ex.sample(t)[0].position[1] for t in ts])
    assert ys[0] == pytest.approx(0.0) and ys[-1] == pytest.approx(0.05)
    # quintic blend over the window: the largest step is 1.875x the average slope, never a jump
    assert np.max(np.abs(np.diff(ys))) <= 1.875 * 0.05 / window * dt + 1e-9
    # and it starts and ends without a velocity step: the first and last steps are tiny
    inside = np.abs(np.diff(ys))[50:50 + int(window / dt)]
    assert inside[0] < 1e-6 and inside[-1] < 1e-6


def test_chunk_after_the_old_one_ran_out_is_not_blended():
    ex = ChunkExecutor(("arm",), blend_window_s=0.2)
    ex.add_chunk(make_chunk(0.0, ramp(0.5, 12)), now=0.0)
    acc = ex.add_chunk(make_chunk(1.5, ramp(0.6, 12), chunk_id=2), now=1.5)
    assert not acc.blended
    assert ex.sample(1.5)[0].position[0] == pytest.approx(0.6)


def test_rapid_chunks_keep_blends_bounded():
    ex = ChunkExecutor(("arm",), blend_window_s=0.3)
    for i in range(50):
        ex.add_chunk(make_chunk(i * 0.05, ramp(0.5 + 0.001 * i, 12), chunk_id=i), now=i * 0.05 + 0.01)
        ex.sample(i * 0.05 + 0.02)
    depth, plan = 0, ex._plan
    while hasattr(plan, "old"):
        depth, plan = depth + 1, plan.old
    assert depth <= 7  # 0.3 s window / 0.05 s between chunks, plus one


def test_gripper_switches_at_blend_midpoint_and_stepwise():
    ex = ChunkExecutor(("arm",), blend_window_s=0.2)
    ex.add_chunk(make_chunk(0.0, ramp(0.5, 12, 0), grippers=np.ones(12)), now=0.0)
    ex.add_chunk(make_chunk(0.5, ramp(0.5, 12, 0), grippers=np.zeros(12), chunk_id=2), now=0.5)
    assert ex.sample(0.55)[0].gripper == 1.0
    assert ex.sample(0.65)[0].gripper == 0.0


def test_chunk_round_trip_to_actions():
    c = make_chunk(0.0, ramp(0.5, 5))
    c2 = Chunk.from_actions(c.to_actions(), c.time_offsets, get_layout("franka_panda"), 0.0)
    assert np.allclose(c2.positions, c.positions) and np.allclose(c2.quats, c.quats)
