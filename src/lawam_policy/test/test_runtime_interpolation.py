"""Quaternion maths and per-arm interpolation."""
import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime import quaternion as quat  # noqa: E402
from lawam_policy.runtime.interpolation import ArmTrack  # noqa: E402


def qz(angle):
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def test_slerp_exact_at_ends_and_unit_norm():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = quat.normalize(rng.normal(size=4)), quat.normalize(rng.normal(size=4))
        assert quat.angle_between(quat.slerp(a, b, 0.0), a) < 1e-6
        assert quat.angle_between(quat.slerp(a, b, 1.0), b) < 1e-6
        for s in np.linspace(0, 1, 11):
            assert abs(np.linalg.norm(quat.slerp(a, b, s)) - 1.0) < 1e-12


def test_slerp_takes_the_shortest_path():
    a = qz(math.radians(170))
    b = -qz(math.radians(-170))  # 20 degrees away the short way, and given with the opposite sign
    mid = quat.slerp(a, b, 0.5)
    # halfway the short way is 180 degrees, not 0 degrees (the long way round)
    assert quat.angle_between(mid, qz(math.pi)) < 1e-9
    # the path angle grows linearly: constant angular speed
    angles = [quat.angle_between(a, quat.slerp(a, b, s)) for s in np.linspace(0, 1, 5)]
    assert np.allclose(angles, np.linspace(0, math.radians(20), 5), atol=1e-9)


def test_slerp_nearly_equal_quaternions_stay_unit():
    a = qz(0.0)
    b = qz(1e-7)
    q = quat.slerp(a, b, 0.3)
    assert abs(np.linalg.norm(q) - 1) < 1e-12


def test_rotvec_round_trip_and_relative():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = quat.normalize(rng.normal(size=4)), quat.normalize(rng.normal(size=4))
        w = quat.relative_rotvec(a, b)
        assert np.linalg.norm(w) <= math.pi + 1e-9
        assert quat.angle_between(quat.multiply(quat.from_rotvec(w), a), b) < 1e-6


def test_zero_quaternion_is_an_error():
    with pytest.raises(ValueError):
        quat.normalize([0, 0, 0, 0])


def _track(interp):
    times = np.array([0.0, 0.1, 0.25, 0.3, 0.5])
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 2, 0], [0, 2, 1], [3, 3, 3]], float)
    quats = np.array([qz(a) for a in (0.0, 0.5, 1.0, 2.5, -3.0)])
    grip = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    return ArmTrack(times, pos, quats, grip, interp), times, pos, quats, grip


@pytest.mark.parametrize("interp", ["linear", "cubic"])
def test_interpolation_exact_at_knots(interp):
    track, times, pos, quats, grip = _track(interp)
    for k, t in enumerate(times):
        s = track.sample(t)
        assert np.allclose(s.position, pos[k], atol=1e-12)
        assert quat.angle_between(s.quat, quats[k]) < 1e-6
        assert s.gripper == grip[k]


@pytest.mark.parametrize("interp", ["linear", "cubic"])
def test_interpolation_between_knots(interp):
    track, times, pos, quats, grip = _track(interp)
    for t in np.linspace(-0.1, 0.6, 141):
        s = track.sample(t)
        assert abs(np.linalg.norm(s.quat) - 1) < 1e-9
        k = max(0, min(len(times) - 1, int(np.searchsorted(times, t, side="right")) - 1))
        assert s.gripper == grip[k]  # stepwise: the latest due knot
    if interp == "linear":
        assert np.allclose(track.sample(0.05).position, [0.5, 0, 0])
    # orientation from 2.5 rad to -3.0 rad goes the short way (through pi), 0.78 rad in total
    mid = track.sample(0.4).quat
    assert quat.angle_between(mid, qz(2.5 + (2 * math.pi - 5.5) / 2)) < 1e-6
    # outside the knot range the ends hold
    assert np.allclose(track.sample(-1).position, pos[0]) and np.allclose(track.sample(9).position, pos[-1])


def test_cubic_is_smooth_through_knots():
    times = np.arange(6) * 0.1
    pos = np.stack([np.sin(times * 5), np.cos(times * 5), times], axis=1)
    track = ArmTrack(times, pos, np.tile(qz(0), (6, 1)), np.ones(6), "cubic")
    eps = 1e-6
    for t in times[1:-1]:  # C1: the velocity left and right of an inner knot agree
        left = (track.sample(t).position - track.sample(t - eps).position) / eps
        right = (track.sample(t + eps).position - track.sample(t).position) / eps
        assert np.allclose(left, right, atol=1e-3)


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError):
        ArmTrack([0, 1], np.zeros((2, 3)), np.tile(qz(0), (2, 1)), [1, 1], "spline")
