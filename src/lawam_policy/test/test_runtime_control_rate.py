"""The policy node queries the model at the control rate the checkpoint was trained at (issue 11)."""
from types import SimpleNamespace

from lawam_policy.runtime.checkpoint_fit import FALLBACK_CONTROL_RATE_HZ, control_rate_for


def test_default_is_the_trained_rate():
    cfg = SimpleNamespace(control_rates_hz={"franka_panda": [10.0, 20.0]})
    assert control_rate_for(cfg, "franka_panda", 0.0) == (10.0, None)
    assert control_rate_for(cfg, "franka_panda", 20.0) == (20.0, None)


def test_unseen_rate_is_used_with_a_warning():
    cfg = SimpleNamespace(control_rates_hz={"franka_panda": [10.0]})
    rate, warning = control_rate_for(cfg, "franka_panda", 15.0)
    assert rate == 15.0 and "trained at 10 Hz" in warning


def test_checkpoint_without_rates_falls_back():
    assert control_rate_for(SimpleNamespace(control_rates_hz={}), "franka_panda", 0.0) == \
        (FALLBACK_CONTROL_RATE_HZ, None)
    assert control_rate_for(None, "quanta_x1", 0.0) == (FALLBACK_CONTROL_RATE_HZ, None)
    assert control_rate_for(None, "quanta_x1", 30.0) == (30.0, None)
