"""lawam-bag-to-lerobot on bags written with rosbags: synchronisation, episode splitting, bad input."""
import subprocess
import sys

import numpy as np
import pytest

from lawam_training.bag_import import main as bag_main
from demo_data import write_demo_bag

pytest.importorskip("lerobot")
from lawam_training.video_decode import PyAVLeRobotDataset  # noqa: E402


def cam_value(t, cam_hz=30.0, cam=0):
    """Fill value of the latest camera frame at or before t (see test/support/demo_data.py)."""
    return (8 * int(np.floor(t * cam_hz + 1e-6))) % 240 + cam


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_synchronises_topics_to_fps(tmp_path, storage):
    bag = write_demo_bag(tmp_path / "bag", storage=storage, duration_s=2.0, cameras=("/cam_a", "/cam_b"))
    out = tmp_path / "ds"
    rc = bag_main([str(bag), "-o", str(out), "--fps", "10", "--camera", "primary=/cam_a", "--camera", "wrist=/cam_b"])
    assert rc == 0
    ds = PyAVLeRobotDataset("local/x", root=out)
    assert ds.meta.total_episodes == 1 and ds.fps == 10
    assert ds.meta.robot_type == "franka_panda"
    # grid from t=0 (all topics have a message) to the last camera frame at 59/30 s
    assert len(ds) == 20
    assert list(ds.meta.features) [:2] == ["observation.images.primary", "observation.images.wrist"]
    for i in (0, 7, 19):
        t = i / 10
        item = ds[i]
        assert item["timestamp"].item() == pytest.approx(t, abs=1e-4)
        state = item["observation.state"].numpy()
        assert state[0] == pytest.approx(t, abs=1e-4)          # pose x = receive time
        assert state[7] == pytest.approx(t / 10, abs=1e-4)     # gripper opening from the finger joints
        np.testing.assert_allclose(state[3:7], [0, 0, 0, 1], atol=1e-6)
        cmd_t = np.floor(t * 15 + 1e-6) / 15                   # latest 15 Hz command
        assert item["action"][0].item() == pytest.approx(cmd_t + 1000, abs=1e-3)
        assert item["action"][7].item() == pytest.approx(0.5)
        assert abs(item["observation.images.primary"][0, 3, 3].item() * 255 - cam_value(t)) <= 3
        assert abs(item["observation.images.wrist"][0, 3, 3].item() * 255 - cam_value(t, cam=1)) <= 3
        assert item["task"] == "pick up the cube"


def test_marker_topic_splits_episodes_and_yaml_mapping(tmp_path):
    bag = write_demo_bag(tmp_path / "bag", duration_s=3.0,
                         markers=[(0.2, "start"), (1.2, "stop"), (1.5, "start"), (2.5, "stop")])
    cfg = tmp_path / "topics.yaml"
    cfg.write_text("fps: 10\nmarker_topic: /episode_marker\ntask: fold the towel\n"
                   "cameras:\n  primary: /camera/color/image_raw\n")
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--config", str(cfg)]) == 0
    ds = PyAVLeRobotDataset("local/x", root=out)
    assert ds.meta.total_episodes == 2
    eps = [ds.meta.episodes[i] for i in range(2)]
    assert [e["length"] for e in eps] == [10, 10]
    second = ds[eps[1]["dataset_from_index"]]
    assert second["observation.state"][0].item() == pytest.approx(1.5, abs=1e-4)
    assert second["frame_index"].item() == 0 and second["task"] == "fold the towel"


def test_actions_from_state(tmp_path):
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, skip_topics=("/lawam/teleop/command",))
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10", "--actions-from-state"]) == 0
    ds = PyAVLeRobotDataset("local/x", root=out)
    item = ds[2]
    assert item["action"][0].item() == pytest.approx(item["observation.state"][0].item() + 0.1, abs=1e-4)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "lawam_training.bag_import", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_bad_input_is_a_clear_error_and_leaves_nothing(tmp_path):
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, skip_topics=("/franka_gripper/joint_states",))
    out = tmp_path / "ds"
    r = cli(bag, "-o", out)
    assert r.returncode == 2 and "/franka_gripper/joint_states" in r.stderr and "gripper of arm arm" in r.stderr
    r = cli(tmp_path / "nope", "-o", out)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli(bag, "-o", out, "--action-layout", "x,y,z")
    assert r.returncode == 2 and "unknown action layout" in r.stderr
    r = cli(bag, "-o", out, "--embodiment", "ur5")
    assert r.returncode == 2 and "unknown embodiment 'ur5'" in r.stderr
    empty = write_demo_bag(tmp_path / "empty", duration_s=1.0, markers=[(0.5, "start"), (0.5, "stop")])
    r = cli(empty, "-o", out, "--marker-topic", "/episode_marker", "--no-gripper-topics")
    assert r.returncode == 2 and "empty episode" in r.stderr
    notask = write_demo_bag(tmp_path / "notask", duration_s=1.0, task=None, skip_topics=("/lawam/task",))
    r = cli(notask, "-o", out, "--no-gripper-topics", "--task-topic", "/lawam/task")
    assert r.returncode == 2 and "/lawam/task" in r.stderr
    # a failure in the second bag, after the first was fine: still nothing on disk
    good = write_demo_bag(tmp_path / "good", duration_s=1.0)
    r = cli(good, bag, "-o", out)
    assert r.returncode == 2
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    r = cli(good, "-o", tmp_path / "full")
    assert r.returncode == 2 and "not empty" in r.stderr


@pytest.mark.parametrize("strip", ["all", "lawam_msgs"])
def test_bag_without_embedded_definitions_uses_our_msg_files(tmp_path, strip):
    """Older bags carry no (or only some) message definitions: lawam_msgs then come from our .msg files."""
    import sqlite3
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, storage="sqlite3")
    con = sqlite3.connect(next(bag.glob("*.db3")))
    con.execute("DELETE FROM message_definitions" + (" WHERE topic_type LIKE 'lawam_msgs/%'" if strip != "all" else ""))
    con.commit()
    con.close()
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10"]) == 0
    assert PyAVLeRobotDataset("local/x", root=out)[3]["action"][0].item() == pytest.approx(1000.2667, abs=1e-3)


def test_msg_path_registers_definitions_the_bag_lacks(tmp_path):
    """A needed topic of a type neither embedded nor known (here the episode marker, my_msgs/Marker)."""
    import sqlite3
    pkg = tmp_path / "defs" / "my_msgs" / "msg"
    pkg.mkdir(parents=True)
    (pkg / "Marker.msg").write_text("# episode boundary\nstring label\nuint32 count\n")

    def marker(t):
        return t, "/marker", "my_msgs/msg/Marker", lambda M: M["my_msgs/msg/Marker"](label="x", count=1)

    bag = write_demo_bag(tmp_path / "bag", duration_s=2.0, storage="sqlite3", msg_paths=[tmp_path / "defs"],
                         extra=[marker(0.2), marker(1.2)])
    con = sqlite3.connect(next(bag.glob("*.db3")))
    con.execute("DELETE FROM message_definitions WHERE topic_type LIKE 'my_msgs/%'")
    con.commit()
    con.close()
    args = [str(bag), "-o", str(tmp_path / "ds"), "--fps", "10", "--marker-topic", "/marker"]
    r = cli(*args)
    assert r.returncode == 2 and "my_msgs/msg/Marker" in r.stderr and "--msg-path" in r.stderr
    assert bag_main(args + ["--msg-path", str(tmp_path / "defs")]) == 0
    ds = PyAVLeRobotDataset("local/x", root=tmp_path / "ds")
    assert ds.meta.total_episodes == 2 and [ds.meta.episodes[i]["length"] for i in range(2)] == [10, 8]


# ---------------------------------------------------------------------------------------------- data integrity
def nothing_written(tmp_path, out):
    return not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]


def column(out, key="observation.state"):
    """(N, D) array of a dataset column, read without decoding any video."""
    return np.asarray(PyAVLeRobotDataset("local/x", root=out).hf_dataset.with_format(None)[key])


def first_frame(out, camera="primary"):
    """Frame 0 of a camera's video as (H, W, 3) uint8, decoded with PyAV."""
    import av
    path = next((out / "videos" / f"observation.images.{camera}").rglob("*.mp4"))
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _pose_msg(x=0.0, qw=1.0):
    def make(M):
        P = M["geometry_msgs/msg/Pose"]
        pose = P(position=M["geometry_msgs/msg/Point"](x=x, y=0.1, z=0.2),
                 orientation=M["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=qw))
        return M["geometry_msgs/msg/PoseStamped"](header=M["std_msgs/msg/Header"](
            stamp=M["builtin_interfaces/msg/Time"](sec=1000, nanosec=550_000_000), frame_id="base"), pose=pose)
    return make


def _command_msg(opening):
    def make(M):
        P = M["geometry_msgs/msg/Pose"]
        pose = P(position=M["geometry_msgs/msg/Point"](x=1.0, y=0.1, z=0.2),
                 orientation=M["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
        arm = M["lawam_msgs/msg/ArmTrajectory"](poses=[pose], gripper_openings=np.array([opening]))
        return M["lawam_msgs/msg/ActionChunk"](header=M["std_msgs/msg/Header"](
            stamp=M["builtin_interfaces/msg/Time"](sec=1000, nanosec=550_000_000), frame_id="base"), chunk_id=99,
            embodiment="franka_panda", arm_names=["arm"], control_rate_hz=15.0, horizon_s=1 / 15,
            time_offsets_s=np.array([0.0]), arms=[arm])
    return make


NON_FINITE = {
    # issue 13's input: the gripper JointState says position = [nan, nan] (a NaN pose was refused, this was not)
    "gripper nan": (dict(gripper_positions=lambda t: [float("nan")] * 2 if t >= 0.5 else [0.01, 0.01]),
                    "/franka_gripper/joint_states", "0.500 s into the bag", "position[0] (fr3_finger_joint1) = nan"),
    "gripper inf": (dict(gripper_positions=lambda t: [0.01, float("inf")] if t >= 0.5 else [0.01, 0.01]),
                    "/franka_gripper/joint_states", "0.500 s into the bag", "position[1] (fr3_finger_joint2) = inf"),
    "pose nan": (dict(extra=[(0.55, "/franka_robot_state_broadcaster/current_pose", "geometry_msgs/msg/PoseStamped",
                              _pose_msg(x=float("nan")))]),
                 "/franka_robot_state_broadcaster/current_pose", "0.550 s into the bag", "pose.position.x = nan"),
    "command opening nan": (dict(extra=[(0.55, "/lawam/teleop/command", "lawam_msgs/msg/ActionChunk",
                                         _command_msg(float("nan")))]),
                            "/lawam/teleop/command", "0.550 s into the bag", "gripper_openings[0] = nan"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_value_of_any_topic_stops_the_import_naming_topic_time_and_field(tmp_path, case, capsys):
    kwargs, topic, when, field = NON_FINITE[case]
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, **kwargs)
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10"]) == 2
    err = capsys.readouterr().err
    assert f"topic {topic}" in err and when in err and field in err, err
    assert nothing_written(tmp_path, out)


@pytest.mark.parametrize("encoding,expect", [("8UC3", "'bgr8' or 'rgb8'"), ("8UC4", "'bgra8' or 'rgba8'"),
                                             ("16UC1", "unsupported image encoding '16UC1'"),
                                             ("bayer_rggb8", "unsupported image encoding 'bayer_rggb8'")])
def test_camera_encoding_without_channel_order_is_refused_like_the_policy_node_does(tmp_path, capsys, encoding,
                                                                                   expect):
    """Issue 13: 8UC3 images were stored with red and blue swapped; now the shared decoder refuses them."""
    from lawam_policy.runtime.images import UnsupportedEncoding
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, encoding=encoding)
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10"]) == 2
    err = capsys.readouterr().err
    assert expect in err and "/camera/color/image_raw" in err, err
    assert str(UnsupportedEncoding.for_encoding(encoding)) in err  # the policy node's words, verbatim
    assert nothing_written(tmp_path, out)


def test_red_bgr8_camera_is_stored_red(tmp_path):
    """Issue 13's pixels, bytes (0, 0, 255), declared bgr8 (as a BGR driver should): stored as RGB red."""
    def red(t):
        def make(M):
            sec, nanosec = divmod(1000 * 10**9 + round(t * 1e9), 10**9)
            header = M["std_msgs/msg/Header"](stamp=M["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                              frame_id="cam")
            data = np.tile(np.array([0, 0, 255], np.uint8), 24 * 32)
            return M["sensor_msgs/msg/Image"](header=header, height=24, width=32, encoding="bgr8", is_bigendian=0,
                                              step=32 * 3, data=data)
        return t, "/red", "sensor_msgs/msg/Image", make

    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, extra=[red(k / 30) for k in range(30)])
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10", "--camera", "primary=/red"]) == 0
    rgb = first_frame(out)[12, 16]
    assert rgb[0] > 230 and rgb[1] < 25 and rgb[2] < 25, rgb


@pytest.mark.parametrize("size", [(49, 65), (48, 65), (49, 64)])
def test_camera_size_the_encoder_cannot_take_is_refused_before_writing(tmp_path, capsys, size):
    """Issue 13: a 49x65 camera failed only at commit with an avcodec_open2 error; now the size and the rule."""
    h, w = size
    bag = write_demo_bag(tmp_path / "bag", duration_s=1.0, size=size)
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10"]) == 2
    err = capsys.readouterr().err
    assert f"{h}x{w}" in err and "even" in err and "--image-size" in err, err
    assert nothing_written(tmp_path, out)
    # the same size asked for with --image-size is refused at once, before any bag is read
    good = write_demo_bag(tmp_path / "good", duration_s=1.0)
    assert bag_main([str(good), "-o", str(out), "--fps", "10", "--image-size", f"{h}x{w}"]) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and f"{h}x{w}" in err and "even" in err, err
    # and the odd camera imports resized to an even size
    assert bag_main([str(bag), "-o", str(out), "--fps", "10", "--image-size", f"{h - h % 2}x{w - w % 2}"]) == 0
    shape = PyAVLeRobotDataset("local/x", root=out).meta.features["observation.images.primary"]["shape"]
    assert tuple(shape[:2]) == (h - h % 2, w - w % 2)


CAMERA, POSE = "/camera/color/image_raw", "/franka_robot_state_broadcaster/current_pose"
GRIPPER, COMMAND = "/franka_gripper/joint_states", "/lawam/teleop/command"


@pytest.mark.parametrize("silent_topics", [(CAMERA, POSE), (GRIPPER,), (COMMAND,), (CAMERA,)],
                         ids=["camera+pose (issue 13)", "gripper", "command", "camera"])
def test_stream_gap_splits_the_episode_and_is_reported(tmp_path, capsys, silent_topics):
    """Issue 13: no camera and pose messages from 1.5 s to 3.0 s while the command went on gave 15 frames
    repeating one image and one state. Now no frame lies in the gap and the episode is split there."""
    bag = write_demo_bag(tmp_path / "bag", duration_s=4.5, silent={t: [(1.5, 3.0)] for t in silent_topics})
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "10"]) == 0
    report = capsys.readouterr().out
    ds = PyAVLeRobotDataset("local/x", root=out)
    assert ds.meta.total_episodes == 2
    eps = [ds.meta.episodes[i] for i in range(2)]
    assert [e["length"] for e in eps] == [15, 15]
    x = column(out)[:, 0]  # pose x = the time of the pose message
    np.testing.assert_allclose(x[:15], np.arange(15) / 10, atol=1e-4)        # 0.0 ... 1.4 s
    np.testing.assert_allclose(x[15:], 3.0 + np.arange(15) / 10, atol=1e-4)  # 3.0 ... 4.4 s: none in the gap
    cmd = column(out, "action")[:, 0] - 1000  # the command continues: each frame's own, never a stale one
    np.testing.assert_allclose(cmd, np.floor(np.concatenate([x[:15], x[15:]]) * 15 + 1e-3) / 15, atol=1e-3)
    for topic in silent_topics:
        assert f"({topic}) has no message from 1.4" in report and "to 3.000 s" in report, report
    assert "dataset episode 0: 15 frames" in report and "dataset episode 1: 15 frames" in report


def test_slower_camera_jittery_delivery_and_max_age_off_are_not_gaps(tmp_path, capsys):
    """A 15 Hz camera in a 30 fps dataset repeats each image once (not a gap); receive times that arrive in
    bursts do not count either (age is measured on header stamps); --max-age off keeps the old behaviour."""
    bursty = {CAMERA: lambda t: 0.25 - (t % 0.25)}  # every 0.25 s all images arrive at once
    bag = write_demo_bag(tmp_path / "bag", duration_s=2.0, cam_hz=15.0, receive_delay=bursty)
    assert bag_main([str(bag), "-o", str(tmp_path / "ds"), "--fps", "30"]) == 0
    assert "no stream gaps in 1 episode" in capsys.readouterr().out
    assert PyAVLeRobotDataset("local/x", root=tmp_path / "ds").meta.total_episodes == 1
    gap = write_demo_bag(tmp_path / "gap", duration_s=3.0, silent={CAMERA: [(1.0, 2.0)]})
    assert bag_main([str(gap), "-o", str(tmp_path / "off"), "--fps", "10", "--max-age", f"{CAMERA}=off"]) == 0
    assert PyAVLeRobotDataset("local/x", root=tmp_path / "off").meta.total_episodes == 1
    # an explicit age longer than the gap, for every topic: no split either; a shorter one splits
    assert bag_main([str(gap), "-o", str(tmp_path / "long"), "--fps", "10", "--max-age", "1.5"]) == 0
    assert PyAVLeRobotDataset("local/x", root=tmp_path / "long").meta.total_episodes == 1
    assert bag_main([str(gap), "-o", str(tmp_path / "short"), "--fps", "10", "--max-age", "0.5"]) == 0
    assert PyAVLeRobotDataset("local/x", root=tmp_path / "short").meta.total_episodes == 2
    assert bag_main([str(gap), "-o", str(tmp_path / "bad"), "--max-age", "-1"]) == 2


def test_frame_times_are_integer_nanoseconds(tmp_path):
    """Issue 13: at --fps 30 the grid was float64 epoch ns (256 ns steps): a gripper sample received exactly
    at a frame time was missed. Frame 1 of a grid starting at 1.7e18 ns lies at +33333333 ns exactly."""
    start = 1_700_000_000_000_000_000
    frame1 = 33_333_333  # round(1e9 / 30)

    def gripper(opening):
        def make(M):
            stamp = M["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=frame1)
            return M["sensor_msgs/msg/JointState"](header=M["std_msgs/msg/Header"](stamp=stamp, frame_id="base"),
                                                   name=["fr3_finger_joint1", "fr3_finger_joint2"],
                                                   position=np.array([opening * 0.04] * 2), velocity=np.zeros(2),
                                                   effort=np.zeros(2))
        return make

    bag = write_demo_bag(tmp_path / "bag", duration_s=0.5, start_ns=start, gripper_positions=lambda t: [0.01, 0.01],
                         extra=[(frame1 / 1e9, GRIPPER, "sensor_msgs/msg/JointState", gripper(0.75))])
    out = tmp_path / "ds"
    assert bag_main([str(bag), "-o", str(out), "--fps", "30"]) == 0
    gripper = column(out)[:3, 7]
    np.testing.assert_allclose(gripper, [0.25, 0.75, 0.25], atol=1e-6)  # frame 1 has the sample received at it
