"""The synthetic-bag helper stamps through the one stamp conversion (integer nanoseconds, with carry)."""
from rosbags.highlevel import AnyReader

from lawam_training.msgdefs import build_typestore
from demo_data import write_demo_bag


def test_demo_bag_header_stamps_carry_nanoseconds_into_seconds(tmp_path):
    # t = 1.9999999999 s used to become a stamp of 1 s + 0 ns (round-to-1e9 then modulo, losing the carry)
    path = write_demo_bag(tmp_path / "bag", duration_s=0.05, cam_hz=20.0, pose_hz=20.0, cmd_hz=20.0,
                          start_s=1.9999999999, task=None)
    with AnyReader([path], default_typestore=build_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/color/image_raw"]
        first = next(reader.messages(connections=conns))
        msg = reader.deserialize(first[2], conns[0].msgtype)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 0)
