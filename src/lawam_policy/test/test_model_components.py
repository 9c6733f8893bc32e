"""LaWAM model core: module shapes, action codec, tokenizer, physical-time code, heatmap, paper sizes."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import io  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402
from lawam_policy.model.action_codec import Normalizer, compute_stats, net_to_wire, wire_to_net  # noqa: E402
from lawam_policy.model.features import to_unit_images  # noqa: E402
from lawam_policy.model.layers import sinusoidal_code  # noqa: E402
from lawam_policy.model.tokenizer import SPECIAL_TOKENS, build_builtin_tokenizer, special_ids  # noqa: E402
from lawam_policy.runtime.heatmap import render_heatmap_png  # noqa: E402
from lawam_policy.runtime.heatmap import similarity_map as subgoal_heatmap  # noqa: E402

torch.set_num_threads(1)  # tiny ops: one thread is faster than two on a shared 2-core machine


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return LaWAMPolicy(LaWAMConfig.from_preset("tiny")).eval()


def random_quats(n, rng):
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    return q


def test_preprocessing_any_size_to_224():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.integers(0, 256, (100, 90, 3), dtype=np.uint8)]
    x = to_unit_images(imgs, 224)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    flat = np.full((300, 400, 3), 128, np.uint8)
    assert torch.allclose(to_unit_images([flat], 224), torch.full((1, 3, 224, 224), 128 / 255), atol=1e-5)


def test_module_shapes(tiny):
    c = tiny.config
    B, C, N = 2, c.feature_dim, c.num_patches
    f = tiny.encode_features(torch.rand(B, 3, 224, 224))
    assert f.shape == (B, N, C) == (2, 196, 32)
    mean, logvar = tiny.idm(f, f)
    assert mean.shape == logvar.shape == (B, c.z_tokens, c.z_dim)
    assert tiny.lawm(f, mean).shape == (B, N, C)
    s = torch.zeros(B, c.net_action_dim("quanta_x1"))
    assert tiny.aux_heads["quanta_x1"](s, mean).shape == s.shape
    H = 7
    times = torch.arange(H).float()[None].repeat(B, 1) / 5
    valid = torch.ones(B, H, dtype=torch.bool)
    st = tiny.vlm.encode_prefix(torch.rand(B, 2, 3, 224, 224), ["pick", "open the drawer"], times, valid)
    assert st["latent_states"].shape == (B, c.num_latent_queries, c.vlm_hidden)
    assert tiny.vlm.aggregate(st["latent_states"]).shape == (B, c.z_tokens, c.z_dim)
    q = tiny.vlm.encode_action_queries(st, insulate=False)
    assert q.shape == (B, H, c.vlm_hidden)
    ctx = tiny.expert.context(st["prefix"], st["prefix_valid"], f, f)
    base = tiny.expert.token_base(q, times)
    v = tiny.expert(torch.randn(B, H, 20), torch.rand(B), base, valid, ctx, "quanta_x1")
    assert v.shape == (B, H, 20)


def test_feature_encoder_is_frozen(tiny):
    assert all(not p.requires_grad for p in tiny.encoder.parameters())
    tiny.train()
    assert not tiny.encoder.training
    tiny.eval()


def test_action_codec_roundtrip_and_stats():
    rng = np.random.default_rng(1)
    layout = get_layout("quanta_x1")
    n = 64
    wire = np.concatenate([np.concatenate([rng.normal(size=(n, 3)), random_quats(n, rng), rng.uniform(0, 1, (n, 1))], 1)
                           for _ in layout.arms], 1)
    w = torch.tensor(wire, dtype=torch.float64)
    net = wire_to_net(w, layout)
    assert net.shape == (n, 20)
    back = net_to_wire(net, layout)
    assert torch.allclose(back, w, atol=1e-9)
    stats = compute_stats(wire, layout)
    norm = Normalizer(layout, stats)
    enc = norm.encode(torch.tensor(wire, dtype=torch.float32))
    assert torch.allclose(enc[:, :3].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(norm.decode(enc), torch.tensor(wire, dtype=torch.float32), atol=1e-4)
    with pytest.raises(ValueError, match="dims"):
        norm.encode(torch.zeros(3, 8))


def test_builtin_tokenizer_is_deterministic_and_has_qwen_specials():
    a, b = build_builtin_tokenizer(), build_builtin_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    vocab = a.get_vocab()
    assert all(tok in vocab for tok in SPECIAL_TOKENS)
    ids = special_ids(a)
    assert len(set(ids.values())) == 4
    enc = a("put the bowl on the plate", add_special_tokens=False)["input_ids"]
    assert a.decode(enc) == "put the bowl on the plate"
    assert len(enc) < len("put the bowl on the plate")  # merges learned, not just bytes


def test_physical_time_code_depends_on_seconds_only(tiny):
    emb = tiny.expert.time_embed
    codes = {}
    for hz in (5.0, 10.0, 20.0):
        H = tiny.config.horizon_steps(hz)
        t = torch.arange(H, dtype=torch.float32) / hz
        codes[hz] = emb.code(t)
    # Same seconds, different rates -> identical code: 0.2 s is index 1 / 2 / 4.
    assert torch.equal(codes[5.0][1], codes[10.0][2]) and torch.equal(codes[10.0][2], codes[20.0][4])
    assert torch.equal(codes[5.0][5], codes[20.0][20])  # 1.0 s
    # Same index, different rates -> different codes.
    assert not torch.allclose(codes[5.0][3], codes[10.0][3], atol=1e-3)
    assert not torch.allclose(codes[10.0][3], codes[20.0][3], atol=1e-3)
    # Horizon is physical: 1.2 s at each rate.
    assert [tiny.config.horizon_steps(hz) for hz in (5, 10, 20, 50)] == [6, 12, 24, 60]
    # The code resolves 10 ms and does not wrap within 10 s.
    c = sinusoidal_code(torch.tensor([0.0, 0.01, 5.0, 9.99]), 64, 0.01, 10.0)
    assert (c[0] - c[1]).abs().max() > 0.1 and (c[2] - c[3]).abs().max() > 0.01


def test_subgoal_heatmap_and_png():
    rng = np.random.default_rng(2)
    cur = rng.normal(size=(196, 16)).astype(np.float32)
    hm = subgoal_heatmap(cur, cur.copy(), (3, 5))
    assert hm.shape == (14, 14)
    assert np.isclose(hm[3, 5], 1.0) and np.unravel_index(hm.argmax(), hm.shape) == (3, 5)
    assert hm.min() >= -1.0 - 1e-6
    assert np.array_equal(hm, subgoal_heatmap(cur, cur, 3 * 14 + 5))
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    png = render_heatmap_png(img, hm)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (120, 160, 3) and not np.array_equal(decoded, img)
    with pytest.raises(ValueError):
        subgoal_heatmap(cur, cur, 196)


def test_paper_preset_sizes_on_meta():
    cfg = LaWAMConfig.from_preset("paper")
    assert (cfg.horizon_s, cfg.vlm_layers, cfg.num_latent_queries, cfg.expert_width, cfg.expert_depth) == \
        (1.2, 16, 8, 1024, 16)
    with torch.device("meta"):
        policy = LaWAMPolicy(cfg)
    rep = policy.parameter_report()

    def near(value, target, tol=0.15):
        return abs(value - target) <= tol * target

    assert near(rep["lawm"], 230e6), rep
    assert near(rep["total"], 2.3e9), rep
    assert near(rep["encoder"], 85.7e6, 0.05), rep
    assert near(rep["vlm"], 1.524e9, 0.02), rep
    assert near(rep["idm"], 170e6), rep
    assert 0.3e9 <= rep["expert"] <= 0.46e9, rep
    assert len(policy.vlm.qwen.language_model.layers) == 16
    assert rep["total"] == rep["encoder"] + rep["lawm"] + rep["vlm"] + rep["queries"] + rep["expert"]
    assert policy.encode_features is not None and policy.encoder.num_prefix == 5  # CLS + 4 registers


def test_config_json_roundtrip(tmp_path):
    cfg = LaWAMConfig.from_preset("tiny")
    cfg.save(tmp_path)
    assert LaWAMConfig.load(tmp_path) == cfg
    with pytest.raises(ValueError):
        LaWAMConfig.from_preset("huge")
    with pytest.raises(ValueError):
        LaWAMConfig.from_dict(dict(cfg.to_dict(), bogus=1))


def test_euler_sampler_inpaints_exactly_and_is_seeded():
    from lawam_policy.model.flow_matching import euler_sample

    known = torch.randn(1, 6, 4)
    mask = torch.tensor([[True, True, False, False, True, False]])
    calls = []

    def velocity(x, tau, step):
        calls.append(float(tau[0]))
        assert step == round(float(tau[0]) * 10)
        return -x + 0.5

    out = euler_sample(velocity, (1, 6, 4), 10, "cpu", torch.Generator().manual_seed(0), known, mask)
    assert torch.equal(out[mask], known[mask])
    assert not torch.allclose(out[~mask], known[~mask])
    assert calls == pytest.approx([i / 10 for i in range(10)])  # 10 Euler steps from tau = 0
    again = euler_sample(velocity, (1, 6, 4), 10, "cpu", torch.Generator().manual_seed(0), known, mask)
    assert torch.equal(out, again)
