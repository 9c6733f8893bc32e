"""lawam-bag-to-lerobot on bags written with rosbags: synchronisation, episode splitting, bad input."""
import subprocess
import sys

import numpy as np
import pytest

from lawam_training.bag_import import main as bag_main
from lawam_training.testing import write_demo_bag

pytest.importorskip("lerobot")
from lawam_training.video_decode import PyAVLeRobotDataset  # noqa: E402


def cam_value(t, cam_hz=30.0, cam=0):
    """Fill value of the latest camera frame at or before t (see lawam_training.testing)."""
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
