"""`finetune` end to end on the tiny preset, CPU: dataset -> stage 1 and stage 2 steps -> checkpoint that
LaWAMPolicy.from_pretrained loads and that predicts a chunk; post-training from a checkpoint; bad input exits 2
leaving nothing behind; a 2-process torchrun (gloo) DDP run, interrupted and resumed, equals a 1-process run."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

pytest.importorskip("lerobot")

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.model import LaWAMPolicy  # noqa: E402
from demo_data import make_moving_demos  # noqa: E402
from lawam_training.finetune import FinetuneSettings, main, parse_args  # noqa: E402
from lawam_training.train import TRAINER_STATE, find_checkpoints  # noqa: E402

torch.set_num_threads(1)
WS = Path(__file__).resolve().parents[3]
FPS, T = 10, 0.4


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return make_moving_demos(tmp_path_factory.mktemp("finetune") / "demos", episodes=3)


def cli(demos, out, *extra, steps=3):
    return ["--dataset", str(demos), "--output", str(out), "--steps", str(steps), "--batch-size", "2",
            "--num-workers", "0", "--horizon", str(T), "--log-every", "1", "--val-every", "2",
            "--checkpoint-every", "2", "--val-fraction", "0.34", "--no-progress", *extra]


@pytest.fixture(scope="module")
def trained(demos, tmp_path_factory):
    """finetune without --checkpoint: the tiny preset, stage 1 then stage 2."""
    out = tmp_path_factory.mktemp("run") / "out"
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(cli(demos, out, "--stage1-steps", "3", steps=3))
    return dict(rc=rc, out=out, log=err.getvalue())


def test_without_checkpoint_trains_stage1_then_stage2_and_says_so(trained):
    assert trained["rc"] == 0, trained["log"]
    assert "no --checkpoint: training the tiny preset from its untrained weights, stage 1 (3 steps) then " \
           "stage 2 (3 steps)" in trained["log"]
    assert "val loss" in trained["log"] and "samples/s" in trained["log"]
    stages = {(s, n) for s, n, _ in find_checkpoints(trained["out"] / "checkpoints")}
    assert {(1, 3), (2, 3)} <= stages
    assert (trained["out"] / "tensorboard" / "stage1").is_dir() and (trained["out"] / "tensorboard" / "stage2").is_dir()
    summary = json.loads((trained["out"] / "training_summary.json").read_text())
    assert summary["stage1"]["step"] == 3 and np.isfinite(summary["stage2"]["val"]["loss"])


def test_output_loads_with_from_pretrained_and_predicts_a_chunk(trained, demos):
    assert trained["rc"] == 0, trained["log"]
    policy = LaWAMPolicy.from_pretrained(trained["out"])
    cfg = policy.config
    # what deployment needs travels in the checkpoint
    assert cfg.horizon_s == pytest.approx(T) and cfg.preset == "tiny"
    assert cfg.camera_roles["franka_panda"] == ["primary"] and cfg.default_embodiment == "franka_panda"
    assert cfg.embodiments["franka_panda"] == {"embodiment": "franka_panda", "arms": ["arm"]}
    stats = cfg.normalization["franka_panda"]
    assert stats["action"]["mean"][0] == pytest.approx(0.3 + 0.2 * np.mean(np.arange(12) / 12) + 0.02, abs=1e-4)
    assert stats["state"]["std"][1] == pytest.approx(np.std([0.0] * 12 + [0.1] * 12 + [0.2] * 12, ddof=1),
                                                     rel=1e-3)
    img = np.zeros((32, 32, 3), np.uint8)
    chunk = policy.predict_chunk([img], "push the block 0", control_hz=FPS, seed=0)
    assert chunk.actions.shape == (4, 8) and np.isfinite(chunk.actions).all()
    np.testing.assert_allclose(chunk.timestamps, np.arange(4) / FPS)
    assert chunk.action_names == list(get_layout("franka_panda").names)
    # the last periodic checkpoint is the same model
    last = max(find_checkpoints(trained["out"] / "checkpoints"))[2]
    again = LaWAMPolicy.from_pretrained(last)
    for k, v in policy.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)


def test_post_training_a_checkpoint_runs_stage2_at_5e5(trained, demos, tmp_path, capsys):
    out = tmp_path / "post"
    rc = main(cli(demos, out, "--checkpoint", str(trained["out"]), steps=2))
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"post-training checkpoint {trained['out']}" in err
    assert {s for s, _, _ in find_checkpoints(out / "checkpoints")} == {2}
    state = torch.load(max(find_checkpoints(out / "checkpoints"))[2] / TRAINER_STATE, weights_only=False)
    assert state["options"]["lr"] == 5e-5
    assert state["scheduler"]["base_lrs"] == [5e-5, 5e-5]
    base, post = LaWAMPolicy.from_pretrained(trained["out"]), LaWAMPolicy.from_pretrained(out)
    b, p = base.state_dict(), post.state_dict()
    assert all(torch.equal(b[k], p[k]) for k in b if k.startswith(("idm.", "lawm.", "encoder.")))
    assert any(not torch.equal(b[k], p[k]) for k in b if k.startswith("expert."))


def test_post_training_a_bf16_checkpoint_trains_float32_weights(trained, demos, tmp_path, capsys):
    """Checkpoints load in their stored dtype; training still keeps float32 master weights."""
    from safetensors.torch import load_file
    LaWAMPolicy.from_pretrained(trained["out"]).save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    rc = main(cli(demos, tmp_path / "post", "--checkpoint", str(tmp_path / "bf16"), steps=1))
    assert rc == 0, capsys.readouterr().err
    stored = load_file(str(tmp_path / "post" / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float32}


def test_config_file_names_only_known_settings_that_differ_and_is_used(demos, tmp_path, capsys):
    """One home per setting: the defaults live in FinetuneSettings (listed in the generated reference); the
    shipped YAML names only known settings whose value differs from the default."""
    shipped = yaml.safe_load((WS / "config" / "finetune.yaml").read_text()) or {}
    assert isinstance(shipped, dict)
    defaults = FinetuneSettings().__dict__
    assert set(shipped) <= set(defaults), f"unknown settings {sorted(set(shipped) - set(defaults))}"
    repeated = sorted(k for k, v in shipped.items() if v == defaults[k])
    assert not repeated, f"config/finetune.yaml repeats the defaults of {repeated}; leave them out"
    settings, _ = parse_args(["--config", str(WS / "config" / "finetune.yaml")])
    assert settings == FinetuneSettings(**{**defaults, **shipped})
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(yaml.safe_dump(dict(stage=1, steps=2, batch_size=3, seed=5)))
    out = tmp_path / "out"
    rc = main(["--config", str(cfg), "--dataset", str(demos), "--output", str(out), "--num-workers", "0",
               "--horizon", str(T), "--batch-size", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["batch_size"] == 2 and run["settings"]["seed"] == 5  # the option beats the file
    assert run["plan"] == [[1, 2]]


def _dataset_without_action(demos, tmp_path):
    bad = tmp_path / "no_action"
    shutil.copytree(demos, bad)
    info = json.loads((bad / "meta" / "info.json").read_text())
    del info["features"]["action"]
    (bad / "meta" / "info.json").write_text(json.dumps(info))
    return bad


@pytest.mark.parametrize("case,expect", [
    ("missing_dataset", "does not exist"),
    ("not_a_dataset", "is not a LeRobot dataset"),
    ("dataset_without_action", "lacks the features ['action']"),
    ("checkpoint_of_other_preset", "is of the 'tiny' preset, but --preset paper"),
    ("not_a_checkpoint", "is not a LaWAM checkpoint"),
    ("horizon_differs_from_checkpoint", "differs from the checkpoint's T = 0.4 s"),
    ("unknown_config_key", "unknown setting(s) ['learning_rate']"),
    ("batch_larger_than_data", "fewer than one global batch"),
])
def test_bad_input_is_named_exits_2_and_leaves_nothing(case, expect, demos, trained, tmp_path, capsys):
    out = tmp_path / "out"
    args = cli(demos, out)
    if case == "missing_dataset":
        args = cli(tmp_path / "nowhere", out)
    elif case == "not_a_dataset":
        (tmp_path / "empty").mkdir()
        args = cli(tmp_path / "empty", out)
    elif case == "dataset_without_action":
        args = cli(_dataset_without_action(demos, tmp_path), out)
    elif case == "checkpoint_of_other_preset":
        args += ["--checkpoint", str(trained["out"]), "--preset", "paper"]
    elif case == "not_a_checkpoint":
        args += ["--checkpoint", str(demos)]
    elif case == "horizon_differs_from_checkpoint":
        args = [a if a != str(T) else "1.2" for a in args] + ["--checkpoint", str(trained["out"])]
    elif case == "unknown_config_key":
        (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
        args += ["--config", str(tmp_path / "bad.yaml")]
    elif case == "batch_larger_than_data":
        args += ["--batch-size", "64"]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert "finetune: error:" in err and expect in err, err
    assert not out.exists(), f"{case} left {sorted(p.name for p in out.iterdir())}"


def test_nonempty_output_needs_resume(demos, trained, capsys):
    before = sorted(p.name for p in trained["out"].iterdir())
    rc = main(cli(demos, trained["out"]))
    assert rc == 2 and "is not empty (use --resume" in capsys.readouterr().err
    assert sorted(p.name for p in trained["out"].iterdir()) == before


def _dataset_with_nan(demos, tmp_path, key="observation.state", col=7):
    """A dataset recorded before non-finite values were refused: a NaN written into its parquet data, at
    frame 1 of episode 1 (frame 13 of the dataset; each episode has a data file of its own)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    bad = tmp_path / "nan_demos"
    shutil.copytree(demos, bad)
    path = sorted((bad / "data").rglob("*.parquet"))[1]
    table = pq.read_table(path)
    rows = table.column(key).to_pylist()
    rows[1][col] = float("nan")
    i = table.schema.get_field_index(key)
    table = table.set_column(i, table.schema.field(i), pa.array(rows, type=table.schema.field(i).type))
    pq.write_table(table, path)
    return bad


@pytest.mark.parametrize("key,name", [("observation.state", "gripper"), ("action", "x")])
def test_non_finite_dataset_values_are_refused_before_training(demos, tmp_path, capsys, key, name):
    """Issue 13: a NaN gripper state gave stats.json `mean: nan`, `loss nan` at every step and a useless
    checkpoint. Now the finetune refuses the data, naming dataset, feature, frame and episode; exit 2."""
    col = 7 if name == "gripper" else 0
    bad = _dataset_with_nan(demos, tmp_path, key, col=col)
    out = tmp_path / "out"
    rc = main(cli(bad, out))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"dataset {bad}: {key} is not finite" in err and f"frame 13 of episode 1, {name} = nan" in err, err
    assert not out.exists()


def test_non_finite_loss_stops_finetune_with_exit_3_naming_the_step(demos, tmp_path, capsys, monkeypatch):
    """Issue 13: finetune logged `loss nan` at every step, printed done and exited 0. Now the first
    non-finite loss stops it (exit 3, the step named) and no final model is written."""
    real = LaWAMPolicy.training_losses
    calls = [0]

    def nan_from_step_2(self, batch, generator=None):
        calls[0] += 1
        out = real(self, batch, generator=generator)
        return dict(out, flow=out["flow"] * float("nan"), loss=out["loss"] * float("nan")) if calls[0] >= 2 else out

    monkeypatch.setattr(LaWAMPolicy, "training_losses", nan_from_step_2)
    out = tmp_path / "out"
    rc = main(cli(demos, out, "--stage", "2", "--checkpoint-every", "1", steps=4))
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "finetune: error: stage 2 step 2: non-finite loss" in err and "done:" not in err, err
    assert [s for _, s, _ in find_checkpoints(out / "checkpoints")] == [1]
    assert not (out / "lawam_config.json").exists() and not (out / "model.safetensors").exists()


COMMON = ["--stage1-steps", "2", "--val-fraction", "0.34"]


@pytest.fixture(scope="module")
def one_process(demos, tmp_path_factory):
    """The reference: 1 process, global batch 4 = 2 micro-batches of 2 (grad_accum 2)."""
    out = tmp_path_factory.mktemp("one") / "out"
    assert main(cli(demos, out, "--grad-accum", "2", *COMMON, steps=2)) == 0
    return out


def torchrun(demos, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(WS / "src" / "lawam_training"), str(WS / "src" / "lawam_policy"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lawam_training.finetune", *cli(demos, out, "--grad-accum", "1", *COMMON, *extra, steps=2)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def two_process_run(demos, out, *extra):
    """2 gloo processes x 1 micro-batch of 2, stopped after one step of stage 1 and resumed by a new torchrun."""
    first = torchrun(demos, out, "--stop-after", "1", *extra)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "stopped at step 1 of stage 1" in first.stderr
    assert not (out / "model.safetensors").exists()
    second = torchrun(demos, out, "--resume", *extra)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("resumed from") == 2  # both processes restored the checkpoint
    state = torch.load(max(find_checkpoints(out / "checkpoints"))[2] / TRAINER_STATE, weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["global_batch"] == 4


def stage1_final(out):
    return LaWAMPolicy.from_pretrained(max(c for c in find_checkpoints(out / "checkpoints") if c[0] == 1)[2])


def compare_val_losses(one, two, rel):
    sa = json.loads((one / "training_summary.json").read_text())
    sb = json.loads((two / "training_summary.json").read_text())
    for stage in ("stage1", "stage2"):
        for term, value in sa[stage]["val"].items():
            assert sb[stage]["val"][term] == pytest.approx(value, rel=rel, abs=1e-7), (stage, term)


def test_torchrun_ddp_two_processes_with_resume_match_one_process(demos, one_process, tmp_path):
    two = tmp_path / "two"
    two_process_run(demos, two, "--distributed", "ddp")
    a, b = LaWAMPolicy.from_pretrained(one_process).state_dict(), LaWAMPolicy.from_pretrained(two).state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=f"{k}: DDP differs from 1 process")
    init = stage1_final(one_process).state_dict()
    assert sum(not torch.equal(init[k], a[k]) for k in a if k.startswith("expert.")) > 0  # stage 2 trained
    compare_val_losses(one_process, two, rel=1e-5)


def test_torchrun_fsdp_two_processes_with_resume_match_one_process(demos, one_process, tmp_path):
    """FSDP's reduce-scatter rounds differently from one process; Adam turns that rounding on near-zero
    gradients into lr-sized steps for a few elements. Stage 1 must match tightly, stage 2 elementwise for
    >= 97 % of the weights, and the frozen modules must not move at all in stage 2."""
    two = tmp_path / "fsdp"
    two_process_run(demos, two, "--distributed", "fsdp")
    s1a, s1b = stage1_final(one_process).state_dict(), stage1_final(two).state_dict()
    for k in s1a:
        torch.testing.assert_close(s1b[k], s1a[k], rtol=1e-5, atol=1e-6, msg=f"{k}: FSDP stage 1 differs")
    a, b = LaWAMPolicy.from_pretrained(one_process).state_dict(), LaWAMPolicy.from_pretrained(two).state_dict()
    total = off = 0
    for k in a:
        if k.startswith(("idm.", "lawm.", "encoder.", "aux_heads.")):
            assert torch.equal(b[k], s1b[k]), f"{k} moved in stage 2 under FSDP"
        diff = (b[k] - a[k]).abs()
        assert diff.max() <= 3e-4, k  # never more than ~ one Adam step apart
        total, off = total + diff.numel(), off + int((diff > 1e-6).sum())
    assert off / total < 0.03, f"{off} of {total} weights differ"
    compare_val_losses(one_process, two, rel=2e-3)
