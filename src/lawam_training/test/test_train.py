"""The training loop (lawam_training.train) on the tiny preset, CPU: both stages learn (overfit a tiny dataset),
resume is bit-exact, checkpoints are atomic and pruned, TensorBoard and progress report loss and samples/s."""
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("lerobot")

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.model import LaWAMConfig, LaWAMPolicy, compute_stats  # noqa: E402
from demo_data import make_moving_demos  # noqa: E402
from lawam_training.data import DemoDataset, MixedDataset  # noqa: E402
from lawam_training.train import (TRAINER_STATE, Trainer, TrainOptions, find_checkpoints,  # noqa: E402
                                  latest_checkpoint)

torch.set_num_threads(1)  # tiny ops on a shared 2-core machine
T = 0.4


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return make_moving_demos(tmp_path_factory.mktemp("train") / "demos")


def make_policy(ds: DemoDataset, seed=0):
    cfg = LaWAMConfig.from_preset("tiny", horizon_s=T)
    a, s = ds.wire_arrays()
    layout = ds.layout
    cfg.normalization[layout.embodiment] = {"action": compute_stats(a, layout), "state": compute_stats(s, layout)}
    cfg.camera_roles[layout.embodiment] = list(ds.cameras)
    torch.manual_seed(seed)
    return LaWAMPolicy(cfg)


def options(**kw):
    base = dict(steps=4, batch_size=2, log_every=1, val_every=1000, checkpoint_every=1000, progress=False,
                num_workers=0, keep_checkpoints=0)
    base.update(kw)
    return TrainOptions(**base)


def weights(policy):
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


# (stage, steps, lr, the loss terms that must fall to below `factor` x their start)
@pytest.mark.parametrize("stage,steps,lr,terms", [
    (1, 25, 2e-3, {"loss": 0.7, "feature": 0.7}),
    # An untrained LaWM ignores z (adaLN-Zero gates start shut), so the subgoal term cannot move yet:
    # the distillation and flow-matching terms must.
    (2, 40, 3e-3, {"loss": 0.8, "distill": 0.5, "flow": 0.7})])
def test_stage_overfits_a_tiny_dataset(demos, tmp_path, stage, steps, lr, terms):
    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    policy = make_policy(ds)
    tr = Trainer(policy, stage, data, tmp_path / "ck", options(steps=steps, batch_size=4, lr=lr), val_data=data)
    before = tr.validate()
    frozen = {k: v for k, v in weights(policy).items() if k.startswith("encoder.")}
    result = tr.fit()
    after = result["val"]
    for term, factor in terms.items():
        assert after[term] < factor * before[term], \
            f"stage {stage} {term} did not fall enough: {before[term]:.4f} -> {after[term]:.4f}"
    train_losses = [h["loss"] for h in result["history"] if h["kind"] == "train"]
    assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5])
    # the frozen DINOv3 encoder never moves; in stage 2 neither do the IDM teacher and LaWM
    for k, v in policy.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert all(h["samples_per_s"] > 0 for h in result["history"] if h["kind"] == "train")


def test_stage2_keeps_stage1_modules_frozen(demos, tmp_path):
    ds = DemoDataset(demos, T)
    policy = make_policy(ds)
    start = weights(policy)
    Trainer(policy, 2, MixedDataset([ds]), tmp_path / "ck", options(steps=2)).fit()
    end = weights(policy)
    for k in start:
        moved = not torch.equal(start[k], end[k])
        if k.startswith(("idm.", "lawm.", "aux_heads.", "encoder.")):
            assert not moved, f"{k} changed in stage 2"
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("expert."))
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("vlm."))


@pytest.mark.parametrize("stage", [1, 2])
def test_resume_is_bit_exact(demos, tmp_path, stage):
    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    # Batches of 2 samples; the run is stopped one step before the end of the first epoch and resumed for
    # three more steps, so the resumed part crosses an epoch boundary.
    per_epoch = len(ds) // 2
    cut, total = per_epoch - 1, per_epoch + 2
    opts = dict(steps=total, grad_accum=1, warmup_steps=2, checkpoint_every=1000)

    full = make_policy(ds)
    Trainer(full, stage, data, tmp_path / "full", options(**opts), val_data=data).fit()

    first = make_policy(ds)
    tr = Trainer(first, stage, data, tmp_path / "cut", options(**opts), val_data=data)
    first_wall = tr.fit(stop_after=cut)["train_wall_s"]
    assert tr.step == cut and latest_checkpoint(tmp_path / "cut", stage).name == f"stage{stage}_step{cut:08d}"
    # The loop draws its noise from per-(step, slot) generators, not the global RNG: disturbing it is harmless.
    torch.manual_seed(1234)
    np.random.seed(99)
    resumed = make_policy(ds, seed=1)  # other initial weights: they must all come from the checkpoint
    tr2 = Trainer(resumed, stage, data, tmp_path / "cut", options(**opts), val_data=data)
    t0 = time.perf_counter()
    resumed_wall = tr2.fit()["train_wall_s"]
    assert tr2.step == total
    # training wall time counts every resumed run: the first run's seconds come back from the checkpoint
    assert first_wall > 0 and first_wall < resumed_wall <= first_wall + time.perf_counter() - t0
    a, b = full.state_dict(), resumed.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    sa = torch.load(latest_checkpoint(tmp_path / "full", stage) / TRAINER_STATE, weights_only=False)
    sb = torch.load(latest_checkpoint(tmp_path / "cut", stage) / TRAINER_STATE, weights_only=False)
    assert sa["scheduler"] == sb["scheduler"] and sa["epoch"] == sb["epoch"] == 1
    for (i, x), (j, y) in zip(sa["optimizer"]["state"].items(), sb["optimizer"]["state"].items()):
        assert i == j and all(torch.equal(x[n], y[n]) for n in x)


def grounding_objective(policy, seed):
    """Stage 0's regression as stage 2's auxiliary loss, on random images whose labels follow the instruction."""
    from lawam_training.vlm_grounding import GroundingObjective
    n, size = 16, policy.config.image_size
    gen = torch.Generator().manual_seed(0)
    named = {0: [0.6, 0.1], 1: [0.4, -0.1]}
    objects = torch.tensor([[named[0], named[1]], [named[1], named[0]]], dtype=torch.float32).expand(n, 2, 2, 2)
    data = {"units": torch.rand(n, 3, size, size, generator=gen).to(torch.float16), "objects": objects.clone(),
            "instructions": ["put the red cube in the bowl", "put the green cube in the bowl"]}
    torch.manual_seed(seed)  # the head's initial weights
    return GroundingObjective(policy, data, train_n=12, batch_size=4, weight=1.0)


def test_auxiliary_objective_trains_beside_stage2_and_resumes_exactly(demos, tmp_path):
    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    cut, total = 2, 5
    opts = dict(steps=total, warmup_steps=1, checkpoint_every=1000)

    plain = make_policy(ds)
    Trainer(plain, 2, data, tmp_path / "plain", options(**opts)).fit()
    full = make_policy(ds)
    aux = grounding_objective(full, seed=0)
    head0 = {k: v.clone() for k, v in aux.state_dict().items()}
    result = Trainer(full, 2, data, tmp_path / "full", options(**opts), aux=aux).fit()
    assert all(np.isfinite(h["aux"]) and h["aux"] > 0 for h in result["history"] if h["kind"] == "train")
    assert any(not torch.equal(v, head0[k]) for k, v in aux.state_dict().items()), "the head did not train"
    # the grounding loss reaches the VLM: the same run without it ends elsewhere
    assert any(not torch.equal(a, b) for a, b in zip(full.vlm.parameters(), plain.vlm.parameters()))

    first = make_policy(ds)
    Trainer(first, 2, data, tmp_path / "cut", options(**opts), aux=grounding_objective(first, seed=0)).fit(stop_after=cut)
    resumed = make_policy(ds, seed=1)
    aux2 = grounding_objective(resumed, seed=5)  # another head: its weights must come from the checkpoint
    Trainer(resumed, 2, data, tmp_path / "cut", options(**opts), aux=aux2).fit()
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), f"{k} differs after resume"
    for k, v in aux.state_dict().items():
        assert torch.equal(v, aux2.state_dict()[k]), f"aux {k} differs after resume"
    with pytest.raises(ValueError, match="with an auxiliary objective"):
        Trainer(make_policy(ds), 2, data, tmp_path / "cut", options(**opts)).fit()


def test_different_data_order_changes_the_result(demos, tmp_path):
    """Guards the resume test: the comparison is sensitive to what resume restores (here the seed)."""
    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    a, b = make_policy(ds), make_policy(ds)
    Trainer(a, 1, data, tmp_path / "a", options(steps=2, seed=0)).fit()
    Trainer(b, 1, data, tmp_path / "b", options(steps=2, seed=1)).fit()
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_checkpoints_are_atomic_pruned_and_loadable(demos, tmp_path):
    ds = DemoDataset(demos, T)
    policy = make_policy(ds)
    run = tmp_path / "ck"
    (run / ".stage1_step00000009.tmp-1").mkdir(parents=True)  # a crash's leftover: never resumed from
    (run / "stage1_step00000008").mkdir()  # no trainer_state.pt: incomplete, ignored
    tr = Trainer(policy, 1, MixedDataset([ds]), run, options(steps=4, checkpoint_every=1, keep_checkpoints=2))
    tr.fit()
    steps = [s for st, s, _ in find_checkpoints(run) if st == 1]
    assert steps == [3, 4]
    saved_rng = torch.get_rng_state()
    torch.rand(100)
    other = Trainer(make_policy(ds, seed=3), 1, MixedDataset([ds]), run, options(steps=4))
    other.load_checkpoint(latest_checkpoint(run, 1))
    assert torch.equal(torch.get_rng_state(), saved_rng)  # the RNG states travel in the checkpoint too
    assert other.step == 4 and torch.equal(other.policy.lawm.pos, policy.lawm.pos)
    ck = latest_checkpoint(run, 1)
    loaded = LaWAMPolicy.from_pretrained(ck)
    for k, v in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert loaded.config.normalization["franka_panda"]["action"]["mean"][0] == pytest.approx(
        policy.config.normalization["franka_panda"]["action"]["mean"][0])


def test_tensorboard_and_progress_report_loss_and_throughput(demos, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    tr = Trainer(make_policy(ds), 1, data, tmp_path / "ck", options(steps=3, val_every=3, progress=True),
                 val_data=data, tensorboard_dir=tmp_path / "tb")
    tr.fit()
    err = capsys.readouterr().err
    assert "stage 1" in err and "loss=" in err and "samples_s=" in err and "val loss" in err
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("stage1/train/loss", "stage1/train/samples_per_s", "stage1/val/loss", "lr/latent_action"):
        assert tag in tags, tags
    assert [e.step for e in acc.Scalars("stage1/train/loss")] == [1, 2, 3]


def test_global_batch_larger_than_data_is_a_clear_error(demos, tmp_path):
    ds = DemoDataset(demos, T)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        Trainer(make_policy(ds), 1, MixedDataset([ds]), tmp_path, options(batch_size=64))


def test_learning_rate_schedule_warms_up_then_decays_by_cosine():
    from lawam_training.train import lr_lambda

    f = lr_lambda(total=10, warmup=2, min_ratio=0.1)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(6) == pytest.approx(0.55) and f(10) == pytest.approx(0.1)
    assert all(f(i) >= f(i + 1) for i in range(2, 10))


def test_per_module_learning_rates_and_lr_override(demos, tmp_path):
    ds = DemoDataset(demos, T)
    policy = make_policy(ds)
    tr = Trainer(policy, 2, MixedDataset([ds]), tmp_path, options())
    assert {g["name"]: g["lr"] for g in tr.optimizer.param_groups} == {"expert": 1e-4, "vlm": 1e-5}
    tr = Trainer(policy, 2, MixedDataset([ds]), tmp_path, options(lr=5e-5))
    assert {g["lr"] for g in tr.optimizer.param_groups} == {5e-5}


def test_bf16_autocast_runs_and_changes_the_numerics(demos, tmp_path):
    """bf16 autocast (the GPU default) exercised on CPU: it trains, and it really is on."""
    ds = DemoDataset(demos, T)
    data = MixedDataset([ds])
    a, b = make_policy(ds), make_policy(ds)
    ra = Trainer(a, 1, data, tmp_path / "a", options(steps=2, precision="fp32"), val_data=data).fit()
    rb = Trainer(b, 1, data, tmp_path / "b", options(steps=2, precision="bf16"), val_data=data).fit()
    assert np.isfinite(rb["val"]["loss"]) and rb["val"]["loss"] != ra["val"]["loss"]
    assert abs(rb["val"]["loss"] - ra["val"]["loss"]) < 0.05 * ra["val"]["loss"]
    assert all(p.dtype == torch.float32 for p in b.parameters())  # master weights stay fp32


# ---------------------------------------------------------------------------------------------- non-finite
class ArrayDemos(torch.utils.data.Dataset):
    """DemoDataset's samples from memory (no video): a bar grows in the image while x and the gripper ramp."""
    embodiment = "franka_panda"
    layout = get_layout("franka_panda")
    cameras = ["primary"]

    def __init__(self, n=8, fps=10, size=(32, 32)):
        self.n, self.fps, self.size, self.H = n, fps, size, int(round(T * fps))

    def __len__(self):
        return self.n

    def group_key(self):
        return self.embodiment, 1, self.size

    def _image(self, u):
        img = torch.zeros(1, *self.size, 3, dtype=torch.uint8)
        img[:, :, : int(4 + u * (self.size[1] - 8))] = 200
        return img

    def _state(self, u):
        return torch.tensor([0.3 + 0.2 * u, 0.0, 0.4, 0, 0, 0, 1, u], dtype=torch.float32)

    def __getitem__(self, i):
        u, uT = i / (self.n + self.H), (i + self.H) / (self.n + self.H)
        acts = torch.stack([self._state((i + k) / (self.n + self.H)) for k in range(self.H)])
        return dict(images_t=self._image(u), images_tT=self._image(uT), actions=acts,
                    action_mask=torch.ones(self.H, dtype=torch.bool),
                    timestamps=torch.arange(self.H, dtype=torch.float32) / self.fps, states_t=self._state(u),
                    states_tT=self._state(uT), control_hz=float(self.fps), embodiment=self.embodiment,
                    instruction="push the block")

    def wire_arrays(self):
        s = torch.stack([self._state(k / (self.n + self.H)) for k in range(self.n + self.H)]).numpy()
        return s, s


def _poison(policy, stage, at_call, how):
    """Make the stage's loss function go non-finite from its `at_call`-th call on (1-based)."""
    name = "latent_action_losses" if stage == 1 else "training_losses"
    real, calls = getattr(policy, name), [0]

    def losses(batch, generator=None):
        calls[0] += 1
        out = real(batch, generator=generator)
        if calls[0] >= at_call:
            if how == "loss":
                out = dict(out, loss=out["loss"] * float("nan"))
            else:  # finite loss, infinite/NaN gradient: d sqrt(x)/dx at 0, times 0
                p = next(q for q in policy.parameters() if q.requires_grad)
                out = dict(out, loss=out["loss"] + 0.0 * torch.sqrt(p - p.detach()).sum())
        return out

    setattr(policy, name, losses)


@pytest.mark.parametrize("stage,how,clip", [(2, "loss", 1.0), (1, "loss", 1.0), (2, "gradient", None),
                                            (1, "gradient", 1.0)])
def test_non_finite_loss_or_gradient_stops_training_at_that_step(tmp_path, stage, how, clip):
    """Issue 13: `loss nan` at every step, then 'done' and a checkpoint raising FloatingPointError on every
    prediction. Now step 3's non-finite loss (or gradient, with or without clipping) stops training there:
    the weights stay those of step 2, its checkpoint is the last one, nothing of step 3 or later is written."""
    data = MixedDataset([ArrayDemos()])
    policy = make_policy(data.datasets[0])
    tr = Trainer(policy, stage, data, tmp_path / "ck", options(steps=6, checkpoint_every=1, max_grad_norm=clip))
    snapshots = []  # the weights after each optimiser step
    tr.optimizer.register_step_post_hook(lambda *_: snapshots.append(weights(policy)))
    _poison(policy, stage, at_call=3, how=how)
    with pytest.raises(FloatingPointError, match=f"stage {stage} step 3: non-finite {how}"):  # NonFiniteTraining
        tr.fit()
    assert tr.step == 2 and len(snapshots) == 2
    assert [s for st, s, _ in find_checkpoints(tmp_path / "ck") if st == stage] == [1, 2]
    for k, v in weights(policy).items():
        assert torch.equal(v, snapshots[-1][k]), f"{k} changed by the non-finite step"
        assert bool(torch.isfinite(v).all()) if v.is_floating_point() else True


def test_no_checkpoint_with_non_finite_weights_or_statistics_is_written(tmp_path):
    from lawam_training.train import save_policy
    data = MixedDataset([ArrayDemos()])
    policy = make_policy(data.datasets[0])
    tr = Trainer(policy, 2, data, tmp_path / "ck", options(steps=2))
    with torch.no_grad():
        next(policy.expert.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(FloatingPointError, match="non-finite weights: \\['expert"):  # NonFiniteTraining
        tr.save_checkpoint()
    assert not find_checkpoints(tmp_path / "ck") and not any((tmp_path / "ck").glob(".*tmp*"))
    policy = make_policy(data.datasets[0])
    policy.config.normalization["franka_panda"]["state"]["mean"][0] = float("nan")
    with pytest.raises(FloatingPointError, match="franka_panda state mean"):
        save_policy(policy, tmp_path / "direct")
    assert not (tmp_path / "direct").exists()


def test_save_policy_writes_what_save_pretrained_writes(tmp_path):
    """One checkpoint writer: the trainer's (a gathered state dict, FSDP's case) gives the same files."""
    from lawam_training.train import save_policy
    policy = make_policy(MixedDataset([ArrayDemos()]).datasets[0])
    policy.save_pretrained(tmp_path / "a")
    save_policy(policy, tmp_path / "b", state_dict=policy.state_dict())
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir())
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
        assert f.stat().st_mode & 0o777 == (tmp_path / "b" / f.name).stat().st_mode & 0o777


def test_statistics_refuse_non_finite_data():
    layout = get_layout("franka_panda")
    wire = np.tile(np.array([0.3, 0, 0.4, 0, 0, 0, 1, 0.5]), (5, 1))
    wire[3, 7] = np.nan  # issue 13: a NaN gripper made every statistic NaN
    with pytest.raises(ValueError, match="sample 3, gripper = nan"):
        compute_stats(wire, layout)
