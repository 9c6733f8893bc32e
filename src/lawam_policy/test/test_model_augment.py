"""Stage-1 augmentation: shared crop/jitter across the frames of a view, distinct encoder/decoder views, seeding."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402
from lawam_policy.model.augment import (apply_augment, random_resized_crop_and_jitter,  # noqa: E402
                                        sample_augment_params)

torch.set_num_threads(1)  # tiny ops: one thread is faster than two on a shared 2-core machine


def gen(seed):
    return torch.Generator().manual_seed(seed)


def clip(B=3, nf=2, S=32, seed=0):
    return torch.rand(B, nf, 3, S, S, generator=gen(seed))


# ---------------------------------------------------------------------------------------------- function
def test_same_params_on_every_frame_of_a_clip():
    x = clip(nf=1)
    static = x.expand(-1, 2, -1, -1, -1).contiguous()
    out = random_resized_crop_and_jitter(static, gen(1))
    assert out.shape == static.shape
    assert torch.equal(out[:, 0], out[:, 1]), "a static clip must stay static"
    assert not torch.allclose(out, static, atol=1e-3), "augmentation changed nothing"
    assert out.min() >= 0 and out.max() <= 1
    # A moving clip: each frame gets exactly the params of the sample (== augmenting frames one by one).
    moving = clip(seed=2)
    params = sample_augment_params(moving.shape[0], gen(3))
    both = apply_augment(moving, params)
    for f in range(2):
        torch.testing.assert_close(both[:, f], apply_augment(moving[:, f], params), rtol=0, atol=1e-6)


def test_seeded_and_per_sample():
    x = clip()
    a, b = random_resized_crop_and_jitter(x, gen(5)), random_resized_crop_and_jitter(x, gen(5))
    assert torch.equal(a, b)
    assert not torch.allclose(a, random_resized_crop_and_jitter(x, gen(6)))
    p = sample_augment_params(4, gen(7))
    assert all(v.shape == (4,) and len(set(v.tolist())) == 4 for v in p.values()), "params must be per sample"


def test_identity_params_are_identity():
    x = clip(nf=1)[:, 0]
    out = random_resized_crop_and_jitter(x, gen(0), crop_scale=(1, 1), crop_ratio=(1, 1), brightness=0,
                                         contrast=0, saturation=0, hue=0)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- policy
@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return LaWAMPolicy(LaWAMConfig.from_preset("tiny", components="stage1"))


def batch(static=False, B=2, size=40, seed=0):
    rng = np.random.default_rng(seed)
    img_t = rng.integers(0, 256, (B, size, size, 3), dtype=np.uint8)
    img_tT = img_t.copy() if static else rng.integers(0, 256, (B, size, size, 3), dtype=np.uint8)
    return dict(images_t=img_t, images_tT=img_tT, embodiment="franka_panda")


def losses(policy, b, seed=0):
    with torch.no_grad():
        return {k: float(v) for k, v in policy.latent_action_losses(b, gen(seed)).items()}


def spy(policy, b, seed=0):
    """Run stage 1 and capture what the encoder, IDM and LaWM saw."""
    seen, handles = {}, []
    encode = policy.encode_features

    def record(x):
        seen["pixels"] = x.clone()
        seen["features"] = encode(x)
        return seen["features"]

    handles.append(policy.idm.register_forward_hook(lambda m, a, o: seen.__setitem__("idm", a)))
    handles.append(policy.lawm.register_forward_hook(lambda m, a, o: seen.__setitem__("lawm", a)))
    policy.encode_features = record
    try:
        with torch.no_grad():
            policy.latent_action_losses(b, gen(seed))
    finally:
        del policy.encode_features
        for h in handles:
            h.remove()
    return seen


def test_policy_views_static_clip_and_distinct_encoder_decoder(policy):
    policy.train()
    B = 2
    seen = spy(policy, batch(static=True, B=B))
    px = seen["pixels"].unflatten(0, (2, B, 2))  # (encoder/decoder view, B, frame t/t+T, 3, S, S)
    assert torch.equal(px[0, :, 0], px[0, :, 1]), "encoder view: frames t and t+T must share crop and jitter"
    assert torch.equal(px[1, :, 0], px[1, :, 1]), "decoder view: input and target must share crop and jitter"
    assert not torch.allclose(px[0], px[1], atol=1e-3), "encoder and decoder views must differ"
    f = seen["features"].unflatten(0, (2, B, 2))
    torch.testing.assert_close(seen["idm"][0], f[0, :, 0])
    torch.testing.assert_close(seen["idm"][1], f[0, :, 1])
    torch.testing.assert_close(seen["lawm"][0], f[1, :, 0])
    # The LaWM target is the decoder view's t+T features: with a static clip it equals LaWM's input.
    torch.testing.assert_close(f[1, :, 1], seen["lawm"][0])


def test_policy_augmentation_is_deterministic_for_a_seed(policy):
    policy.train()
    b = batch(seed=1)
    assert losses(policy, b, seed=3) == losses(policy, b, seed=3)
    assert losses(policy, b, seed=3)["feature"] != losses(policy, b, seed=4)["feature"]


def test_no_augmentation_when_disabled_in_eval_or_with_features(policy):
    b = batch(seed=2)
    with torch.no_grad():
        feats = dict(features_t=policy.encode_features(policy.processor.views(b["images_t"])[:, 0]),
                     features_tT=policy.encode_features(policy.processor.views(b["images_tT"])[:, 0]),
                     embodiment="franka_panda")
    policy.eval()
    reference = losses(policy, feats)  # the pre-augmentation path: features of the plain views
    assert losses(policy, b) == pytest.approx(reference, rel=1e-6, abs=1e-7), "eval mode must not augment"
    policy.train()
    assert losses(policy, feats) == reference, "precomputed features must not be augmented"
    policy.config.stage1_augment = False
    try:
        assert losses(policy, b) == pytest.approx(reference, rel=1e-6, abs=1e-7), "disabled must not augment"
    finally:
        policy.config.stage1_augment = True
        policy.eval()


def test_config_without_augment_fields_loads():
    d = LaWAMConfig.from_preset("tiny").to_dict()
    for k in [k for k in d if k.startswith("augment_") or k == "stage1_augment"]:
        del d[k]
    cfg = LaWAMConfig.from_dict(d)
    assert cfg.stage1_augment is True and cfg.augment_crop_scale == (0.6, 1.0)
    with pytest.raises(ValueError):
        LaWAMConfig.from_preset("tiny", augment_crop_scale=(0.0, 1.0))


def test_stage1_trains_with_augmentation():
    torch.manual_seed(3)
    policy = LaWAMPolicy(LaWAMConfig.from_preset("tiny", components="stage1")).train()
    b = batch(seed=5)
    opt = torch.optim.Adam(policy.parameter_groups(1)[0]["params"], lr=3e-3)
    hist = []
    for step in range(40):
        out = policy.latent_action_losses(b, gen(step))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        hist.append(float(out["feature"].detach()))
    assert all(np.isfinite(hist))
    assert np.mean(hist[-5:]) < 0.5 * np.mean(hist[:2]), hist
