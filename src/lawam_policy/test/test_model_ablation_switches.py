"""The ablation switches of LaWAMConfig (benchmarks/ablations.py, issue 15) each do what they say, and their
defaults are the paper's model. Tiny preset, CPU, no files."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402

torch.set_num_threads(1)


def make_policy(seed=0, **overrides):
    torch.manual_seed(seed)
    policy = LaWAMPolicy(LaWAMConfig.from_preset("tiny", **overrides))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # open the adaLN-Zero branches so every path is exercised
        for p in policy.parameters():
            if p.is_floating_point() and torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return policy.eval()


def make_batch(rng, B=2, H=12, hz=10.0, size=48):
    q = rng.normal(size=(B, H, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    actions = np.concatenate([rng.normal(scale=0.3, size=(B, H, 3)), q, rng.uniform(0, 1, (B, H, 1))], -1)
    return dict(images_t=rng.integers(0, 256, (B, 1, size, size, 3), dtype=np.uint8),
                images_tT=rng.integers(0, 256, (B, 1, size, size, 3), dtype=np.uint8),
                actions=actions.astype(np.float32), timestamps=np.tile(np.arange(H) / hz, (B, 1)).astype(np.float32),
                embodiment="franka_panda", instructions=["pick up the red block", "open the drawer"][:B])


def image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (96, 128, 3), dtype=np.uint8)


def _vlm_weight_grad(policy) -> float:
    return sum(float(p.grad.abs().sum()) for p in policy.vlm.qwen.parameters() if p.grad is not None)


def test_defaults_are_the_paper_model_and_old_configs_load():
    cfg = LaWAMConfig.from_preset("tiny")
    assert (cfg.subgoal_conditioning, cfg.knowledge_insulation, cfg.lambda_distill, cfg.time_encoding,
            cfg.subgoal_teacher_forcing) == (True, True, 1.0, "seconds", 0.0)
    old = cfg.to_dict()
    for key in ("subgoal_conditioning", "knowledge_insulation", "lambda_distill", "time_encoding",
                "time_index_step_s", "subgoal_teacher_forcing"):
        old.pop(key)  # a checkpoint written before the switches existed
    assert LaWAMConfig.from_dict(old) == cfg
    with pytest.raises(ValueError, match="time_encoding"):
        LaWAMConfig.from_preset("tiny", time_encoding="frames")
    with pytest.raises(ValueError, match="lambda_distill"):
        LaWAMConfig.from_preset("tiny", lambda_distill=-1.0)


@pytest.mark.parametrize("insulated", [True, False])
def test_without_ki_the_flow_loss_reaches_the_vlm(insulated):
    policy = make_policy(seed=1, knowledge_insulation=insulated).train()
    policy.parameter_groups(2)
    policy.zero_grad(set_to_none=True)
    losses = policy.training_losses(make_batch(np.random.default_rng(1)), generator=torch.Generator().manual_seed(0))
    losses["flow"].backward()
    if insulated:
        assert _vlm_weight_grad(policy) == 0.0, "with KI the flow loss must not reach any VLM weight"
        assert policy.vlm.aggregator.proj.weight.grad is None
    else:
        assert _vlm_weight_grad(policy) > 0.0, "w/o KI the flow loss must reach the VLM weights"
        # ... and through the un-detached subgoal, the latent-action aggregator that drives LaWM
        assert policy.vlm.aggregator.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in policy.lawm.parameters()), "LaWM stays frozen"


def test_without_distillation_the_distill_term_has_no_weight():
    batch = make_batch(np.random.default_rng(2))
    for weight in (1.0, 0.0):
        policy = make_policy(seed=2, lambda_distill=weight).train()
        policy.parameter_groups(2)
        out = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
        assert float(out["distill"].detach()) > 0  # still measured (reported), whatever its weight
        expected = weight * out["distill"] + policy.config.lambda_subgoal * out["subgoal"] + out["flow"]
        assert torch.allclose(out["loss"], expected)
        policy.zero_grad(set_to_none=True)
        out["loss"].backward()
        # the latent queries learn from distillation and the subgoal loss; without distillation only the latter
        assert policy.vlm.latent_queries.grad.abs().sum() > 0
    # weight 0: the gradient is the subgoal loss's alone
    policy.zero_grad(set_to_none=True)
    out = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    total = policy.vlm.latent_queries.grad.clone()
    policy.zero_grad(set_to_none=True)
    out = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
    (policy.config.lambda_subgoal * out["subgoal"]).backward()
    assert torch.allclose(total, policy.vlm.latent_queries.grad, atol=1e-7)


@pytest.mark.parametrize("conditioned", [True, False])
def test_without_lawm_the_actions_do_not_depend_on_lawm(conditioned):
    policy = make_policy(seed=3, subgoal_conditioning=conditioned)
    img = image(3)
    before = policy.predict_chunk([img], "pick up the red block", 10.0, seed=0)
    with torch.no_grad():
        for p in policy.lawm.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    after = policy.predict_chunk([img], "pick up the red block", 10.0, seed=0)
    assert not np.allclose(before.subgoal, after.subgoal)  # LaWM did change
    if conditioned:
        assert not np.allclose(before.actions, after.actions), "the full model's actions follow the subgoal"
    else:
        np.testing.assert_array_equal(before.actions, after.actions)


@pytest.mark.parametrize("encoding", ["seconds", "index"])
def test_index_time_code_is_the_same_for_two_rates(encoding):
    policy = make_policy(seed=4, time_encoding=encoding)
    img = image(4)
    slow = policy.prefix_only([img], "open the drawer", 5.0)  # 6 tokens
    fast = policy.prefix_only([img], "open the drawer", 10.0)  # 12 tokens
    # the first 6 action queries see the same causal context; only their time code can differ
    same = torch.allclose(slow["base"][0], fast["base"][0, :slow["H"]], atol=1e-5)
    assert same == (encoding == "index")
    # the chunk's timestamps stay physical seconds either way
    np.testing.assert_allclose(policy.predict_chunk([img], "open the drawer", 5.0, seed=0).timestamps,
                               np.arange(6) / 5.0)


def test_index_time_code_in_training_ignores_the_rate():
    rng = np.random.default_rng(5)
    batch = make_batch(rng, H=6, hz=5.0)
    fast = dict(batch, timestamps=batch["timestamps"] / 2)  # the same tokens claimed at 10 Hz
    for encoding, equal in (("seconds", False), ("index", True)):
        policy = make_policy(seed=5, time_encoding=encoding).train()
        a = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))["flow"]
        b = policy.training_losses(fast, generator=torch.Generator().manual_seed(0))["flow"]
        assert bool(torch.allclose(a, b)) == equal


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_subgoal_teacher_forcing_gives_the_expert_lawm_of_the_teacher_latent(share, monkeypatch):
    """share 0 (the paper's Eq. 5): the expert's subgoal is LaWM(f_t, z_hat); share 1: LaWM(f_t, z*)."""
    policy = make_policy(subgoal_teacher_forcing=share).train()
    seen = {}

    def spy(name, fn):
        def wrapped(*args):
            out = fn(*args)
            seen[name] = (args, out)
            return out
        monkeypatch.setattr(policy if name == "teacher" else policy.vlm if name == "aggregate" else policy.expert,
                            {"teacher": "teacher_latent", "aggregate": "aggregate", "context": "context"}[name],
                            wrapped)

    spy("teacher", policy.teacher_latent)
    spy("aggregate", policy.vlm.aggregate)
    spy("context", policy.expert.context)
    policy.training_losses(make_batch(np.random.default_rng(0)), torch.Generator().manual_seed(0))
    _, _, f_t, subgoal = seen["context"][0]
    with torch.no_grad():
        from_teacher = policy.lawm(f_t, seen["teacher"][1])
        from_prior = policy.lawm(f_t, seen["aggregate"][1])
    assert not torch.allclose(from_teacher, from_prior, atol=1e-4)
    torch.testing.assert_close(subgoal, from_teacher if share else from_prior, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="subgoal_teacher_forcing"):
        LaWAMConfig.from_preset("tiny", subgoal_teacher_forcing=1.5)
