"""LaWAMPolicy behaviour: causal layout, Knowledge Insulation, inpainting, padding, overfitting both stages,
checkpoints, predict_chunk contract and bad input. All on the `tiny` preset, CPU, no files."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402
from lawam_policy.model.checkpoint import WEIGHTS_NAME  # noqa: E402

torch.set_num_threads(1)  # tiny ops: one thread is faster than two on a shared 2-core machine


def randomize_zero_params(module, seed=0):
    """adaLN-Zero starts every residual branch shut; open them so the tests exercise every path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point() and torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def make_policy(seed=0, **overrides):
    torch.manual_seed(seed)
    policy = LaWAMPolicy(LaWAMConfig.from_preset("tiny", **overrides))
    randomize_zero_params(policy, seed)
    return policy.eval()


@pytest.fixture(scope="module")
def policy():
    return make_policy()


def rand_quats(rng, shape):
    q = rng.normal(size=(*shape, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., 3:] < 0, -1, 1)


def wire_actions(rng, shape, arms=1):
    parts = []
    for _ in range(arms):
        parts += [rng.normal(scale=0.3, size=(*shape, 3)), rand_quats(rng, shape), rng.uniform(0, 1, (*shape, 1))]
    return np.concatenate(parts, -1).astype(np.float32)


def make_batch(rng, B=2, H=12, hz=10.0, views=2, size=48):
    return dict(
        images_t=rng.integers(0, 256, (B, views, size, size, 3), dtype=np.uint8),
        images_tT=rng.integers(0, 256, (B, views, size, size, 3), dtype=np.uint8),
        actions=wire_actions(rng, (B, H)), action_mask=np.ones((B, H), bool),
        timestamps=np.tile(np.arange(H) / hz, (B, 1)).astype(np.float32),
        states_t=wire_actions(rng, (B,)), states_tT=wire_actions(rng, (B,)),
        embodiment="franka_panda", instructions=["pick up the red block", "open the drawer"][:B])


def obs(rng, n=2, h=96, w=128):
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def unit(policy, images):
    from lawam_policy.model.features import to_unit_images
    return to_unit_images(images, policy.config.image_size)[None]


# ---------------------------------------------------------------------------------------------- layout
def test_token_layout_order(policy):
    valid = torch.ones(1, 5, dtype=torch.bool)
    lay = policy.vlm.build_layout(3, ["open the drawer"], valid, "cpu")
    ids = lay["ids"][0].tolist()
    sp = policy.vlm.special
    n_img = policy.vlm.tokens_per_image + 2
    assert ids[0] == sp["vision_start"] and ids[n_img - 1] == sp["vision_end"]
    text = policy.tokenizer("open the drawer", add_special_tokens=False)["input_ids"]
    assert ids[n_img:n_img + len(text)] == text
    assert lay["latent"] == slice(n_img + len(text), n_img + len(text) + policy.config.num_latent_queries)
    aux_start = lay["latent"].stop
    assert ids[aux_start] == sp["vision_start"] and lay["prefix_len"] == aux_start + 2 * n_img
    assert len(ids) == lay["prefix_len"] + 5


def test_causal_layout_aux_images_and_action_queries_do_not_change_z_hat(policy):
    rng = np.random.default_rng(0)
    primary, aux1, aux2 = obs(rng, 3)

    def z_and_queries(images, times, instruction="pick up the red block"):
        with torch.no_grad():
            t = torch.tensor(times, dtype=torch.float32)[None]
            st = policy.vlm.encode_prefix(unit(policy, images), [instruction], t, torch.ones_like(t, dtype=torch.bool))
            return policy.vlm.aggregate(st["latent_states"]), policy.vlm.encode_action_queries(st, insulate=False)

    base_times = np.arange(12) / 10
    z0, q0 = z_and_queries([primary, aux1], base_times)
    z_aux, q_aux = z_and_queries([primary, aux2], base_times)
    z_noaux, _ = z_and_queries([primary], base_times)
    z_q, _ = z_and_queries([primary, aux1], np.arange(30) / 25)
    assert torch.allclose(z0, z_aux, atol=1e-6)
    assert torch.allclose(z0, z_noaux, atol=1e-6)
    assert torch.allclose(z0, z_q, atol=1e-6)
    # ... while what z_hat may see does change it, and the action queries do see the aux images.
    z_prim, _ = z_and_queries([aux2, aux1], base_times)
    z_text, _ = z_and_queries([primary, aux1], base_times, "fold the towel")
    assert not torch.allclose(z0, z_prim, atol=1e-4)
    assert not torch.allclose(z0, z_text, atol=1e-4)
    assert not torch.allclose(q0, q_aux, atol=1e-4)


# ---------------------------------------------------------------------------------------------- KI
def _grads(module):
    return {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in module.named_parameters()}


def _all_zero(grads):
    return all(g is None or torch.count_nonzero(g) == 0 for g in grads.values())


def test_knowledge_insulation():
    policy = make_policy(seed=1).train()
    policy.parameter_groups(2)
    batch = make_batch(np.random.default_rng(1))

    policy.zero_grad(set_to_none=True)
    losses = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
    losses["flow"].backward()
    assert _all_zero(_grads(policy.vlm.qwen)), "flow matching must not update any VLM weight"
    assert _all_zero(_grads(policy.lawm)), "flow matching must not update LaWM"
    assert _all_zero(_grads(policy.vlm.aggregator)) and policy.vlm.latent_queries.grad is None
    assert policy.vlm.action_query.grad is not None and policy.vlm.action_query.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.vlm.action_time.parameters())
    assert all(p.grad is not None for p in policy.vlm.action_query_parameters())
    assert all(p.grad is not None for n, p in policy.expert.named_parameters() if "quanta_x1" not in n)

    policy.zero_grad(set_to_none=True)
    losses = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
    losses["distill"].backward()
    layer_grads = _grads(policy.vlm.qwen.language_model.layers)
    assert not _all_zero(layer_grads), "distillation must reach the VLM layers"
    assert not _all_zero(_grads(policy.vlm.qwen.visual)), "distillation must reach the vision tower"
    assert policy.vlm.latent_queries.grad.abs().sum() > 0

    policy.zero_grad(set_to_none=True)
    losses = policy.training_losses(batch, generator=torch.Generator().manual_seed(0))
    losses["subgoal"].backward()
    assert not _all_zero(_grads(policy.vlm.qwen.language_model.layers)), "subgoal loss must reach the VLM"
    assert _all_zero(_grads(policy.lawm)), "LaWM is frozen in stage 2"
    policy.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------------- padding
def test_padding_never_changes_valid_outputs(policy):
    rng = np.random.default_rng(2)
    images = unit(policy, obs(rng, 2)).repeat(2, 1, 1, 1, 1)
    H, Hp = 12, 20
    times = torch.zeros(2, Hp)
    times[0, :H] = torch.arange(H) / 10
    times[1] = torch.arange(Hp) / 16
    valid = torch.zeros(2, Hp, dtype=torch.bool)
    valid[0, :H] = True
    valid[1] = True
    noisy = torch.randn(2, Hp, 10)
    tau = torch.tensor([0.3, 0.3])
    f = torch.randn(2, 196, policy.config.feature_dim)

    def velocity(t, v, x, instr):
        with torch.no_grad():
            st = policy.vlm.encode_prefix(images[:len(t)], instr, t, v)
            q = policy.vlm.encode_action_queries(st, insulate=False)
            ctx = policy.expert.context(st["prefix"], st["prefix_valid"], f[:len(t)], f[:len(t)])
            return policy.expert(x, tau[:len(t)], policy.expert.token_base(q, t), v, ctx, "franka_panda")

    padded = velocity(times, valid, noisy, ["pick up the red block", "open the top drawer of the cabinet"])
    alone = velocity(times[:1, :H], valid[:1, :H], noisy[:1, :H], ["pick up the red block"])
    assert torch.allclose(padded[0, :H], alone[0], atol=1e-5)
    # garbage in the padded slots changes nothing either
    noisy2 = noisy.clone()
    noisy2[0, H:] = 1e3
    padded2 = velocity(times, valid, noisy2, ["pick up the red block", "open the top drawer of the cabinet"])
    assert torch.allclose(padded2[0, :H], padded[0, :H], atol=1e-5)


# ---------------------------------------------------------------------------------------------- inference
def test_predict_chunk_contract(policy):
    rng = np.random.default_rng(3)
    images = obs(rng, 2)
    for hz, emb, dim in ((20.0, None, 8), (10.0, "quanta_x1", 16), (5, "franka_panda", 8)):
        out = policy.predict_chunk(images, "pick up the red block", hz, embodiment=emb, seed=0)
        H = round(1.2 * hz)
        assert out.actions.shape == (H, dim) and out.timestamps.shape == (H,)
        assert np.allclose(out.timestamps, np.arange(H) / hz)
        assert out.subgoal.shape == (196, policy.config.feature_dim) == out.current_features.shape
        for a in range(dim // 8):
            q = out.actions[:, a * 8 + 3:a * 8 + 7]
            assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
            g = out.actions[:, a * 8 + 7]
            assert (g >= 0).all() and (g <= 1).all()
        assert np.isfinite(out.actions).all()
    single = policy.predict_chunk(images[:1], "pick up the red block", 20.0, horizon_s=1.2, seed=0)
    assert single.actions.shape == (24, 8)


def test_predict_chunk_deterministic_for_seed(policy):
    rng = np.random.default_rng(4)
    images = obs(rng, 2)
    a = policy.predict_chunk(images, "open the drawer", 10.0, seed=7)
    b = policy.predict_chunk(images, "open the drawer", 10.0, seed=7)
    c = policy.predict_chunk(images, "open the drawer", 10.0, seed=8)
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.subgoal, b.subgoal)
    assert not np.allclose(a.actions, c.actions)
    assert np.array_equal(a.subgoal, c.subgoal)  # the subgoal does not depend on the action noise


def test_sampling_noise_scale_moves_the_chunk_to_the_deterministic_one():
    """0: the same chunk whatever the seed; between 0 and 1 the chunk lies between that one and the full draw."""
    images = obs(np.random.default_rng(4), 2)
    chunks = {}
    for scale in (0.0, 0.5, 1.0):
        policy = make_policy(sampling_noise_scale=scale)
        chunks[scale] = [policy.predict_chunk(images, "open the drawer", 10.0, seed=s).actions[:, :3]
                         for s in (7, 8)]
    zero, half, full = chunks[0.0], chunks[0.5], chunks[1.0]
    assert np.array_equal(zero[0], zero[1])
    assert not np.allclose(full[0], full[1])
    spread = [np.abs(c[0] - c[1]).mean() for c in (zero, half, full)]
    assert spread[0] == 0 < spread[1] < spread[2]


def test_sampling_noise_scale_is_validated_and_old_configs_sample_the_full_noise():
    assert LaWAMConfig().sampling_noise_scale == 1.0  # the paper's sampler
    assert LaWAMConfig.from_preset("sim").sampling_noise_scale == 0.0
    old = LaWAMConfig.from_preset("tiny").to_dict()
    del old["sampling_noise_scale"]  # a checkpoint written before the field existed
    assert LaWAMConfig.from_dict(old).sampling_noise_scale == 1.0
    for bad in (-0.1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="sampling_noise_scale"):
            LaWAMConfig.from_preset("tiny", sampling_noise_scale=bad)


def test_inpainting_keeps_previous_actions(policy):
    rng = np.random.default_rng(5)
    images = obs(rng, 1)
    hz = 10.0
    prev = wire_actions(rng, (5,)).astype(np.float64)
    prev_t = np.arange(5) / hz
    free = policy.predict_chunk(images, "fold the towel", hz, seed=3)
    out = policy.predict_chunk(images, "fold the towel", hz, seed=3, prev_actions=prev, prev_timestamps=prev_t)
    assert np.allclose(out.actions[:5], prev, atol=1e-6)
    assert not np.allclose(out.actions[5:], free.actions[5:], atol=1e-4)  # the rest follows the inpainted start
    # Timestamps off the grid by < half a period snap to the nearest step; beyond the horizon are ignored.
    shifted = policy.predict_chunk(images, "fold the towel", hz, seed=3, prev_actions=prev[:2],
                                   prev_timestamps=np.array([0.31, 5.0]))
    assert np.allclose(shifted.actions[3], prev[0], atol=1e-6)
    with pytest.raises(ValueError, match="prev_timestamps"):
        policy.predict_chunk(images, "fold the towel", hz, prev_actions=prev)
    with pytest.raises(ValueError, match="prev_actions"):
        policy.predict_chunk(images, "fold the towel", hz, prev_actions=prev[:, :7], prev_timestamps=prev_t)


def test_bad_input_raises_value_error(policy):
    rng = np.random.default_rng(6)
    img = obs(rng, 1)[0]
    cases = [
        (([], "pick", 10.0), "no images"),
        (([img.astype(np.float32)], "pick", 10.0), "uint8"),
        (([img[..., :2]], "pick", 10.0), "channels"),
        (([img[..., 0]], "pick", 10.0), "shape"),
        (([img], "", 10.0), "instruction"),
        (([img], "   ", 10.0), "instruction"),
        (([img], "pick", 0.0), "control rate"),
        (([img], "pick", -5.0), "control rate"),
        (([img], "pick", float("nan")), "control rate"),
        (([img, img, img, img], "pick", 10.0), "at most"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            policy.predict_chunk(*args)
    with pytest.raises(ValueError, match="horizon"):
        policy.predict_chunk([img], "pick", 10.0, horizon_s=-1.0)
    with pytest.raises(ValueError, match="horizon"):
        policy.predict_chunk([img], "pick", 10.0, horizon_s=2.0)
    with pytest.raises(ValueError, match="embodiment"):
        policy.predict_chunk([img], "pick", 10.0, embodiment="spot")


def test_non_finite_outputs_raise():
    policy = make_policy(seed=2)
    with torch.no_grad():
        policy.expert.action_out["franka_panda"].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError):
        policy.predict_chunk(obs(np.random.default_rng(7), 1), "pick", 10.0, seed=0)


def test_tiny_chunk_is_fast_on_cpu(policy):
    images = obs(np.random.default_rng(8), 2, 480, 640)
    policy.predict_chunk(images, "pick up the red block", 20.0, seed=0)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        policy.predict_chunk(images, "pick up the red block", 20.0, seed=0)
        times.append(time.perf_counter() - t0)
    assert sorted(times)[1] < 0.5, times


# ---------------------------------------------------------------------------------------------- training
def _overfit(policy, loss_fn, params, steps, lr):
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for step in range(steps):
        losses = loss_fn(torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return history


def test_stage1_overfits_one_batch():
    policy = make_policy(seed=3, components="stage1").train()
    assert policy.vlm is None and policy.expert is None
    batch = make_batch(np.random.default_rng(9))
    with torch.no_grad():
        batch["features_t"] = policy.encode_features(policy.processor.views(batch.pop("images_t"))[:, 0])
        batch["features_tT"] = policy.encode_features(policy.processor.views(batch.pop("images_tT"))[:, 0])
    groups = policy.parameter_groups(1)
    hist = _overfit(policy, lambda g: policy.latent_action_losses(batch, g), groups[0]["params"], 150, 3e-3)
    first, last = hist[0], np.mean([h["feature"] for h in hist[-10:]])
    assert last < 0.1 * first["feature"], (first, hist[-1])
    assert np.mean([h["state"] for h in hist[-10:]]) < 0.2 * first["state"]
    assert all(np.isfinite(h["loss"]) for h in hist)


def test_stage2_overfits_one_batch():
    """Stage 1 then stage 2 on one batch: z_hat learns z*, so the frozen LaWM's subgoal approaches f_{t+T}."""
    policy = make_policy(seed=4).train()
    batch = make_batch(np.random.default_rng(10))
    with torch.no_grad():
        batch["features_tT"] = policy.encode_features(policy.processor.views(batch.pop("images_tT"))[:, 0])
        batch["features_t"] = policy.encode_features(policy.processor.views(batch["images_t"])[:, 0])
    _overfit(policy, lambda g: policy.latent_action_losses(batch, g), policy.parameter_groups(1)[0]["params"],
             150, 3e-3)
    lawm_before = {k: v.clone() for k, v in policy.lawm.state_dict().items()}
    groups = policy.parameter_groups(2)
    assert [g["name"] for g in groups] == ["expert", "vlm"] and groups[0]["lr"] > groups[1]["lr"]
    params = [p for g in groups for p in g["params"]]
    hist = _overfit(policy, lambda g: policy.training_losses(batch, g), params, 80, 2e-3)
    first = hist[0]
    tail = {k: np.mean([h[k] for h in hist[-10:]]) for k in first}
    assert tail["flow"] < 0.4 * first["flow"], (first, tail)
    assert tail["distill"] < 0.1 * first["distill"], (first, tail)
    assert tail["subgoal"] < 0.5 * first["subgoal"], (first, tail)
    assert all(torch.equal(v, policy.lawm.state_dict()[k]) for k, v in lawm_before.items()), "LaWM must stay frozen"


def test_stage2_reads_a_cached_z_star_in_place_of_the_teacher(policy):
    """A batch's z_star is the distillation target as given: equal to the teacher's, the losses match;
    another target changes only the distillation term."""
    batch = make_batch(np.random.default_rng(11))
    with torch.no_grad():
        batch["features_t"] = policy.encode_features(policy.processor.views(batch["images_t"])[:, 0])
        batch["features_tT"] = policy.encode_features(policy.processor.views(batch["images_tT"])[:, 0])
        z_star = policy.teacher_latent(batch["features_t"], batch["features_tT"])
        plain = policy.training_losses(batch, torch.Generator().manual_seed(0))
        cached = policy.training_losses(dict(batch, z_star=z_star), torch.Generator().manual_seed(0))
        moved = policy.training_losses(dict(batch, z_star=z_star + 1), torch.Generator().manual_seed(0))
    assert all(torch.allclose(plain[k], cached[k]) for k in plain)
    assert moved["distill"] > plain["distill"] + 0.5
    assert torch.allclose(moved["flow"], plain["flow"]) and torch.allclose(moved["subgoal"], plain["subgoal"])


# ---------------------------------------------------------------------------------------------- checkpoints
def test_float16_checkpoint_halves_the_file_and_loads_as_float32(policy, tmp_path):
    from safetensors.torch import load_file
    policy.save_pretrained(tmp_path / "f32")
    policy.save_pretrained(tmp_path / "f16", dtype=torch.float16)
    stored = load_file(str(tmp_path / "f16" / WEIGHTS_NAME))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    size = lambda d: (tmp_path / d / WEIGHTS_NAME).stat().st_size  # noqa: E731
    assert size("f16") < 0.55 * size("f32")
    loaded = LaWAMPolicy.from_pretrained(tmp_path / "f16")
    ref = policy.state_dict()
    for k, v in loaded.state_dict().items():
        assert v.dtype == ref[k].dtype
        assert torch.equal(v, ref[k].to(torch.float16).to(ref[k].dtype)) if v.is_floating_point() else torch.equal(v, ref[k])


def test_checkpoint_roundtrip_is_bit_exact(policy, tmp_path):
    policy.config.normalization["franka_panda"] = {
        "action": {"mean": [0.1] * 3 + [0.0] * 6 + [0.5], "std": [0.2] * 3 + [1.0] * 6 + [0.5]}}
    try:
        policy.save_pretrained(tmp_path)
        assert (tmp_path / WEIGHTS_NAME).is_file() and (tmp_path / "lawam_config.json").is_file()
        loaded = LaWAMPolicy.from_pretrained(tmp_path)
        sd_a, sd_b = policy.state_dict(), loaded.state_dict()
        assert sd_a.keys() == sd_b.keys()
        assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
        assert loaded.config.normalization == policy.config.normalization
        assert loaded.config.embodiments == policy.config.embodiments
        assert loaded.config.camera_roles == policy.config.camera_roles
        assert loaded.config.horizon_s == 1.2
        images = obs(np.random.default_rng(11), 2)
        a = policy.predict_chunk(images, "pick up the red block", 20.0, seed=5)
        b = loaded.predict_chunk(images, "pick up the red block", 20.0, seed=5)
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.subgoal, b.subgoal)
    finally:
        policy.config.normalization.pop("franka_panda")


def test_stage1_checkpoint_loads_into_stage2(tmp_path):
    stage1 = make_policy(seed=5, components="stage1")
    stage1.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="stage1"):
        LaWAMPolicy.from_pretrained(tmp_path).predict_chunk(obs(np.random.default_rng(0), 1), "pick", 10.0)
    full = LaWAMPolicy.from_pretrained(tmp_path, components="all")
    assert full.vlm is not None and full.expert is not None
    for name in ("lawm", "idm", "encoder", "aux_heads"):
        a, b = getattr(stage1, name).state_dict(), getattr(full, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    out = full.predict_chunk(obs(np.random.default_rng(12), 1), "pick", 10.0, seed=0)
    assert out.actions.shape == (12, 8)


def test_build_checkpoint_from_local_snapshots(tmp_path):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from lawam_policy.model.build_checkpoint import main
    from lawam_policy.model.tokenizer import build_builtin_tokenizer

    cfg = LaWAMConfig.from_preset("tiny")
    torch.manual_seed(0)
    dino = DINOv3ViTModel(DINOv3ViTConfig(**cfg.dinov3))
    dino.save_pretrained(tmp_path / "dino")
    qcfg = Qwen3VLConfig(text_config=dict(cfg.qwen3vl["text_config"], num_hidden_layers=4),
                         vision_config=cfg.qwen3vl["vision_config"])
    qwen = Qwen3VLForConditionalGeneration(qcfg)
    qwen.save_pretrained(tmp_path / "qwen")
    build_builtin_tokenizer().save_pretrained(str(tmp_path / "qwen"))
    assert main(["--dinov3", str(tmp_path / "dino"), "--qwen3vl", str(tmp_path / "qwen"),
                 "--output", str(tmp_path / "ckpt"), "--preset", "tiny"]) == 0
    built = LaWAMPolicy.from_pretrained(tmp_path / "ckpt")
    assert len(built.vlm.qwen.language_model.layers) == cfg.vlm_layers == 2
    src = qwen.model.state_dict()
    dst = built.vlm.qwen.state_dict()
    assert all(torch.equal(dst[k], src[k]) for k in dst), "Qwen3-VL weights (first layers) copied"
    assert torch.equal(built.encoder.vit.state_dict()["embeddings.patch_embeddings.weight"],
                       dino.state_dict()["embeddings.patch_embeddings.weight"])
    assert built.config.dinov3_path is None and built.config.qwen3vl_path is None
    assert built.predict_chunk(obs(np.random.default_rng(13), 1), "pick", 10.0, seed=0).actions.shape == (12, 8)


def test_build_checkpoint_without_a_snapshot_is_one_line_and_exit_2(tmp_path, capsys):
    from lawam_policy.model.build_checkpoint import main
    assert main(["--dinov3", str(tmp_path / "nope"), "--qwen3vl", str(tmp_path / "nope"),
                 "--output", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lawam-build-checkpoint: error: DINOv3 snapshot") and "\n" not in err
    assert not (tmp_path / "ckpt").exists()


def test_bf16_inference_runs(policy):
    """bf16 is the GPU dtype; the same code path must run (here on the CPU) and stay finite."""
    import copy

    half = copy.deepcopy(policy).to(torch.bfloat16)
    out = half.predict_chunk(obs(np.random.default_rng(14), 2), "pick up the red block", 10.0, seed=0)
    assert out.actions.shape == (12, 8) and np.isfinite(out.actions).all()
    assert out.actions.dtype == np.float64 and out.subgoal.dtype == np.float32


def test_padded_batch_with_garbage_in_padding_gives_the_same_loss():
    policy = make_policy(seed=6)
    rng = np.random.default_rng(15)
    batch = make_batch(rng, B=2, H=12)
    padded = dict(batch)
    for key, fill in (("actions", np.nan), ("timestamps", 99.0)):
        extra = np.full((2, 4) + batch[key].shape[2:], fill, np.float32)
        padded[key] = np.concatenate([batch[key], extra], 1)
    padded["action_mask"] = np.concatenate([batch["action_mask"], np.zeros((2, 4), bool)], 1)
    a = policy.training_losses(batch, torch.Generator().manual_seed(0))
    b = policy.training_losses(padded, torch.Generator().manual_seed(0))
    for k in ("distill", "subgoal"):
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert torch.isfinite(b["flow"])


def test_fused_inference_pass_matches_two_pass_layout(policy):
    """Inference runs prefix + action queries in one VLM pass; training splits them for KI. Same numbers."""
    rng = np.random.default_rng(16)
    images = unit(policy, obs(rng, 2))
    times = (torch.arange(12) / 10.0)[None]
    valid = torch.ones(1, 12, dtype=torch.bool)
    with torch.no_grad():
        two = policy.vlm.encode_prefix(images, ["stack the bowls"], times, valid)
        q_two = policy.vlm.encode_action_queries(two, insulate=True)
        one = policy.vlm.encode_prefix(images, ["stack the bowls"], times, valid, fused_queries=True)
    assert torch.allclose(one["prefix"], two["prefix"], atol=1e-5)
    assert torch.allclose(one["latent_states"], two["latent_states"], atol=1e-5)
    assert torch.allclose(one["queries"], q_two, atol=1e-5)
