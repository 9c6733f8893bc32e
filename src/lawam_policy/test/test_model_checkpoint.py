"""Checkpoint files and configs across versions, the processor on its own, and the predictor interface the
runtime types against (issue 16). Tiny preset, CPU."""
import inspect
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402
from lawam_policy.model.checkpoint import WEIGHTS_NAME  # noqa: E402
from lawam_policy.model.config import CONFIG_NAME  # noqa: E402
from lawam_policy.model.processor import LaWAMProcessor  # noqa: E402
from lawam_policy.runtime.predictor import Predictor  # noqa: E402

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
OLD_CONFIG = HERE / "data" / "old_config"  # written by LaWAMConfig.preset("tiny", ...) before from_preset
SHIPPED = HERE.parents[1] / "lawam_bringup" / "checkpoints" / "franka_pick_place"


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return LaWAMPolicy(LaWAMConfig.from_preset("tiny")).eval()


def frame(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)


# ---- the preset field and the preset constructor no longer share a name ------------------------------------
def test_default_config_records_its_preset_name():
    # The classmethod `preset` used to shadow the field's default: LaWAMConfig() held a bound method.
    cfg = LaWAMConfig()
    assert cfg.preset == "paper"
    assert json.loads(json.dumps(cfg.to_dict()))["preset"] == "paper"
    assert LaWAMConfig.from_preset("sim").preset == "sim"


def test_old_format_config_loads_and_keeps_its_preset(tmp_path):
    raw = json.loads((OLD_CONFIG / CONFIG_NAME).read_text())
    assert raw["preset"] == "tiny"  # the committed fixture is in the old format
    cfg = LaWAMConfig.load(OLD_CONFIG)
    assert cfg.preset == "tiny" and cfg.horizon_s == 1.0 and cfg.trained_rates_hz("franka_panda") == [10.0]
    assert cfg == LaWAMConfig.from_preset("tiny", horizon_s=1.0, control_rates_hz={"franka_panda": [10.0]})
    torch.manual_seed(0)
    LaWAMPolicy(cfg).save_pretrained(tmp_path)
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["preset"] == "tiny"
    assert LaWAMPolicy.from_pretrained(tmp_path).config.preset == "tiny"


def test_shipped_sim_checkpoint_loads_and_predicts():
    stored = load_file(str(SHIPPED / WEIGHTS_NAME))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    policy = LaWAMPolicy.from_pretrained(SHIPPED)
    assert policy.config.preset == "sim" and not policy.training
    # float16 is a storage format: the policy computes in float32, with exactly the stored values.
    sd = policy.state_dict()
    assert sd.keys() == stored.keys()
    assert all(torch.equal(sd[k], stored[k].to(sd[k].dtype)) for k in stored)
    assert {p.dtype for p in policy.parameters()} == {torch.float32}
    assert not any(t.is_meta for t in list(policy.parameters()) + list(policy.buffers()))
    rate = policy.config.trained_rates_hz("franka_panda")[0]
    roles = policy.config.cameras("franka_panda")
    out = policy.predict_chunk([frame(i) for i in range(len(roles))], "put the red cube in the bowl", rate, seed=0)
    assert out.actions.shape == (policy.config.horizon_steps(rate), 8) and np.isfinite(out.actions).all()


# ---- files and loading -------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_checkpoint_files_get_the_umask_mode(policy, tmp_path, umask):
    old = os.umask(umask)
    try:
        policy.save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(old)
    for f in (tmp_path / "ckpt").iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f.name


def test_bf16_checkpoint_loads_in_bf16_with_its_values(policy, tmp_path):
    policy.save_pretrained(tmp_path, dtype=torch.bfloat16)
    loaded = LaWAMPolicy.from_pretrained(tmp_path)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}  # no float32 copy is built
    ref = policy.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k].to(v.dtype)), k
    assert not any(t.is_meta for t in list(loaded.parameters()) + list(loaded.buffers()))
    as_fp32 = LaWAMPolicy.from_pretrained(tmp_path, dtype=torch.float32)
    assert {p.dtype for p in as_fp32.parameters()} == {torch.float32}
    out = loaded.predict_chunk([frame()], "pick", 10.0, seed=0)
    assert np.isfinite(out.actions).all()


def test_loading_weights_that_do_not_fit_says_so(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    other = LaWAMConfig.load(tmp_path)
    other.expert_width = 2 * other.expert_width
    other.save(tmp_path)
    with pytest.raises(ValueError, match="do not fit"):
        LaWAMPolicy.from_pretrained(tmp_path)


# ---- the processor works without a model ------------------------------------------------------------------
def test_processor_checks_and_maps_the_previous_chunk():
    proc = LaWAMProcessor(LaWAMConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="instruction is empty"):
        proc.check_request([frame()], " ", 10.0)
    with pytest.raises(ValueError, match="control rate"):
        proc.check_request([frame()], "pick", 0.0)
    wire = np.tile([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0], (3, 1))
    ctx = proc.inpaint_context(wire, np.array([0.0, 0.1, 5.0]), 10.0, "franka_panda")
    assert sorted(ctx.rows) == [0, 1] and ctx.mask[0].nonzero().flatten().tolist() == [0, 1]
    decoded = proc.decode_chunk(ctx.known, "franka_panda", ctx)
    assert np.array_equal(decoded[:2], wire[:2])
    with pytest.raises(ValueError, match="together"):
        proc.inpaint_context(wire, None, 10.0, "franka_panda")


# ---- the runtime's predictor interface ---------------------------------------------------------------------
def test_lawam_policy_is_a_runtime_predictor(policy):
    assert isinstance(policy, Predictor)
    declared = inspect.signature(Predictor.predict_chunk).parameters
    actual = inspect.signature(LaWAMPolicy.predict_chunk).parameters
    assert list(actual) == list(declared)
    assert all(actual[n].default == declared[n].default for n in declared)
    out = policy.predict_chunk([frame()], "pick", 10.0, seed=0)
    assert out.timestamps.shape == (12,) and out.actions.shape == (12, 8)
