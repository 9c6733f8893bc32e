"""lawam-average-checkpoints (the uniform model soup of the shipped pick-and-place checkpoint), tiny preset."""
import pytest
import torch

from lawam_policy.model import LaWAMConfig, LaWAMPolicy
from lawam_training.average_checkpoints import average_checkpoints, main

torch.set_num_threads(1)


def saved(tmp_path, name, seed, dtype=torch.float16, **overrides):
    torch.manual_seed(seed)
    cfg = LaWAMConfig.from_preset("tiny", **overrides)
    return LaWAMPolicy(cfg).save_pretrained(tmp_path / name, dtype=dtype)


def test_the_average_holds_the_mean_weights_in_the_stored_dtype_and_the_shared_config(tmp_path):
    srcs = [saved(tmp_path, f"run{i}", seed=i) for i in range(3)]
    out = average_checkpoints(srcs, tmp_path / "soup")
    runs = [LaWAMPolicy.from_pretrained(s).state_dict() for s in srcs]
    soup = LaWAMPolicy.from_pretrained(out)
    state = soup.state_dict()
    floats = [k for k, v in state.items() if v.is_floating_point()]
    assert floats and all(
        torch.allclose(state[k], sum(r[k] for r in runs) / 3, atol=2e-3, rtol=2e-3) for k in floats)
    moved = [k for k in floats if not torch.equal(runs[0][k], runs[1][k])]
    assert moved and any(not torch.allclose(state[k], runs[0][k], atol=1e-3) for k in moved)  # not a copy
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} <= {"F16", "I64", "BOOL"}
    assert soup.config.to_dict() == LaWAMPolicy.from_pretrained(srcs[0]).config.to_dict()


def test_checkpoints_that_differ_beyond_their_weights_are_refused_naming_the_key(tmp_path, capsys):
    a = saved(tmp_path, "a", seed=0)
    b = saved(tmp_path, "b", seed=1, horizon_s=2.0)
    with pytest.raises(ValueError, match="horizon_s"):
        average_checkpoints([a, b], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()
    assert main(["--output", str(tmp_path / "soup"), str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "horizon_s" in err


def test_an_existing_output_or_a_single_checkpoint_is_refused_and_nothing_is_written(tmp_path, capsys):
    a, b = saved(tmp_path, "a", seed=0), saved(tmp_path, "b", seed=1)
    before = (a / "model.safetensors").read_bytes()
    assert main(["--output", str(a), str(a), str(b)]) == 2
    assert "exists" in capsys.readouterr().err and (a / "model.safetensors").read_bytes() == before
    assert main(["--output", str(tmp_path / "soup"), str(a)]) == 2
    assert "at least two" in capsys.readouterr().err and not (tmp_path / "soup").exists()
