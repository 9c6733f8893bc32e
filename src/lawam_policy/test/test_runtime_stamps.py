"""The one stamp <-> time conversion (runtime/stamps.py): integer nanoseconds, carries, negatives."""
from types import SimpleNamespace

import pytest

from lawam_policy.runtime import stamps


def test_carry_into_seconds():
    # 1.9999999999 s rounds to 2 s exactly: the nanoseconds must carry into sec, not wrap to 0 in sec 1.
    st = stamps.fill_stamp(SimpleNamespace(), stamps.seconds_to_ns(1.9999999999))
    assert (st.sec, st.nanosec) == (2, 0)


def test_round_trip_is_exact_in_ns():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_732_960_000_123_456_789, -1, -1_500_000_000):
        st = stamps.fill_stamp(SimpleNamespace(), ns)
        assert 0 <= st.nanosec < stamps.NS_PER_S
        assert stamps.stamp_to_ns(st) == ns


def test_negative_time_keeps_nanosec_in_range():
    assert stamps.split_ns(-1) == (-1, 999_999_999)
    assert stamps.stamp_to_seconds(SimpleNamespace(sec=-1, nanosec=500_000_000)) == -0.5


def test_non_finite_seconds_refused():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            stamps.seconds_to_ns(bad)
