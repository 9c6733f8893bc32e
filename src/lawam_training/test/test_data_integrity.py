"""Issue 13's shared mechanisms, unit by unit: the one image decoder behind the recorder and the bag import,
non-finite refusals in every conversion, the stream-gap rule (bag and live)."""
import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from lawam_policy.action_layout import get_layout
from lawam_policy.runtime.images import ImageError, decode_image
from lawam_training.conversions import (ConversionError, chunk_first_step, gripper_from_joint_state, image_to_rgb,
                                        pose_to_vec)
from lawam_training.gaps import GAP_FRAMES, LiveGapMonitor, MaxAge, find_gaps, median_period_ns, split_at_gaps

MS = 1_000_000


def image(encoding, pixels):
    h, w = pixels.shape[:2]
    return NS(encoding=encoding, height=h, width=w, step=pixels[0].size, data=pixels.tobytes())


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1),
                                               ("8UC1", 1), ("8UC3", 3), ("8UC4", 4), ("16UC1", 2), ("yuv422", 2)])
def test_recorder_and_bag_import_decode_exactly_as_the_policy_node(encoding, channels):
    """conversions.image_to_rgb (recorder, bag import) and runtime.images.decode_image (policy node) give the
    same image or the same refusal, word for word."""
    pixels = np.arange(2 * 3 * channels, dtype=np.uint8).reshape(2, 3, channels)
    try:
        expected = decode_image(image(encoding, pixels))
    except ImageError as e:
        with pytest.raises(ConversionError) as got:
            image_to_rgb(image(encoding, pixels))
        assert str(got.value) == str(e)
        return
    assert np.array_equal(image_to_rgb(image(encoding, pixels)), expected)


def test_truncated_image_is_a_conversion_error_not_a_traceback():
    with pytest.raises(ConversionError, match="needs"):
        image_to_rgb(NS(encoding="rgb8", height=4, width=4, step=12, data=bytes(10)))


def pose(**over):
    p = dict(x=0.3, y=0.0, z=0.4)
    q = dict(qx=0.0, qy=0.0, qz=0.0, qw=1.0)
    p.update({k: v for k, v in over.items() if k in p})
    q.update({k: v for k, v in over.items() if k in q})
    return NS(pose=NS(position=NS(**p), orientation=NS(x=q["qx"], y=q["qy"], z=q["qz"], w=q["qw"])))


@pytest.mark.parametrize("field", ["x", "y", "z", "qx", "qy", "qz", "qw"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_pose_field_is_checked(field, bad):
    name = {"qx": "orientation.x", "qy": "orientation.y", "qz": "orientation.z", "qw": "orientation.w"}.get(
        field, f"position.{field}")
    with pytest.raises(ConversionError, match=f"non-finite pose.{name} = {bad}"):
        pose_to_vec(pose(**{field: bad}))


@pytest.mark.parametrize("positions,names,expect", [
    ([math.nan, math.nan], ["fr3_finger_joint1", "fr3_finger_joint2"], "position[0] (fr3_finger_joint1) = nan"),
    ([0.01, math.inf], ["fr3_finger_joint1", "fr3_finger_joint2"], "position[1] (fr3_finger_joint2) = inf"),
    ([math.nan, 0.01], [], "position[0] = nan"),  # no names: the first two positions
])
def test_gripper_joint_state_refuses_non_finite_fingers(positions, names, expect):
    with pytest.raises(ConversionError) as err:
        gripper_from_joint_state(NS(position=positions, name=names))
    assert expect in str(err.value)
    # a NaN in a joint the gripper does not use is no concern of the dataset
    assert gripper_from_joint_state(NS(position=[0.02, 0.02, math.nan], name=["a_finger", "b_finger", "wrist"])) \
        == pytest.approx(0.5)


def test_command_refuses_non_finite_pose_and_opening():
    layout = get_layout("franka_panda")

    def chunk(p, opening):
        return NS(arm_names=["arm"], arms=[NS(poses=[p.pose], gripper_openings=[opening])])

    with pytest.raises(ConversionError, match="arm 'arm' step 0: non-finite gripper_openings\\[0\\] = nan"):
        chunk_first_step(chunk(pose(), math.nan), layout)
    with pytest.raises(ConversionError, match="arm 'arm' step 0: non-finite pose.position.y = inf"):
        chunk_first_step(chunk(pose(y=math.inf), 0.5), layout)


# ---- the gap rule ----------------------------------------------------------------------------------
def test_default_max_age_is_a_few_periods_but_at_least_a_few_frames():
    auto = MaxAge()
    cam15 = 66_666_667
    assert auto.for_topic("/cam", cam15, fps=30) == 3 * cam15  # a 15 Hz camera in a 30 fps dataset: 0.2 s
    assert auto.for_topic("/joint_states", 1 * MS, fps=15) == int(GAP_FRAMES * 1e9 / 15)  # 1 kHz: frames rule
    assert auto.for_topic("/cam", None, fps=30) is None  # no period known: nothing to judge by
    ages = MaxAge.parse(["0.5", "/cmd=off", "/cam=auto", "/pose=0.25"])
    assert ages.for_topic("/other", cam15, 30) == 500 * MS and ages.for_topic("/cmd", cam15, 30) is None
    assert ages.for_topic("/cam", cam15, 30) == 3 * cam15 and ages.for_topic("/pose", None, 30) == 250 * MS
    assert MaxAge.parse({"/pose": 0.3}).for_topic("/pose", None, 30) == 300 * MS  # the YAML mapping form
    for bad in (["-1"], ["0"], ["/x=soon"], ["=0.2"]):
        with pytest.raises(ValueError, match="max message age"):
            MaxAge.parse(bad)


def test_gaps_are_measured_on_stamps_and_split_the_frames():
    stamps = [k * 100 * MS for k in range(15)] + [k * 100 * MS for k in range(30, 45)]  # silent 1.5 s - 3.0 s
    recv = [s + 7 * MS for s in stamps]
    assert median_period_ns(stamps) == 100 * MS
    gaps = find_gaps("/cam", "camera primary", stamps, recv, 300 * MS)
    assert len(gaps) == 1 and gaps[0].length_ns == 1600 * MS
    assert gaps[0].recv_from_ns == 1407 * MS and gaps[0].recv_to_ns == 3007 * MS
    assert "camera primary (/cam) has no message from 1.407 s to 3.007 s (1.600 s" in gaps[0].describe(0)
    frames = [k * 100 * MS for k in range(45)]
    runs = split_at_gaps(frames, gaps)
    assert [(r[0], r[-1]) for r in runs] == [(0, 1400 * MS), (3100 * MS, 4400 * MS)]
    # bursts of receive times with regular stamps are no gap; a stamp that jumps back is one
    bursty = [s - s % (500 * MS) + 500 * MS for s in stamps[:15]]
    assert find_gaps("/cam", "c", stamps[:15], bursty, 300 * MS) == []
    assert len(find_gaps("/cam", "c", [0, 100 * MS, -5000 * MS], [0, 1, 2], 300 * MS)) == 1


def test_live_monitor_flags_a_stream_older_than_its_max_age():
    mon = LiveGapMonitor(MaxAge(), fps=15, roles={"/pose": "pose", "/cam": "camera"})
    for k in range(20):
        assert mon.observe("/pose", k * 10 * MS) is None  # 100 Hz up to 0.19 s
    for k in range(6):
        assert mon.observe("/cam", k * 33 * MS) is None   # 30 Hz up to 0.165 s
    now = 200 * MS
    assert mon.limit_ns("/pose") == int(GAP_FRAMES * 1e9 / 15)  # 100 Hz: at least 3 frames (0.2 s)
    assert mon.stale(now) == []
    later = 190 * MS + 500 * MS  # the pose stream stopped at 0.19 s; a frame at 0.69 s
    stale = mon.stale(later, ["/pose"])
    assert stale == [("/pose", 500 * MS, mon.limit_ns("/pose"))]
    assert mon.observe("/pose", later) == 500 * MS  # its next message reports the interval too
    mon.forget("/pose")
    assert mon.stale(10**12, ["/pose"]) == []  # a stream not seen since it was forgotten holds no data
