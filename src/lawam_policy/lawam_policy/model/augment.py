"""Stage-1 image augmentation: batched random resized crop + colour jitter, in torch, seeded by a generator.

Works on unit images ((B, 3, H, W) floats in [0, 1], before the DINOv3 normalisation) or on clips
((B, F, 3, H, W)): every frame of one clip gets the SAME crop and jitter parameters, so a static clip stays
static and the frame-t / frame-t+T pair stays aligned. Parameters are drawn per sample from `generator` (on the
generator's device), so a seeded generator gives the same views every time.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Luma weights (ITU-R 601-2), as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


def sample_augment_params(batch: int, generator: torch.Generator | None = None, *, crop_scale=(0.6, 1.0),
                          crop_ratio=(3 / 4, 4 / 3), brightness: float = 0.3, contrast: float = 0.3,
                          saturation: float = 0.3, hue: float = 0.05, device=None) -> dict:
    """Per-sample parameters (tensors of length `batch`) for `apply_augment`."""
    dev = generator.device if generator is not None else (device or torch.device("cpu"))
    u = lambda lo, hi: _uniform(batch, float(lo), float(hi), generator, dev)  # noqa: E731
    area = u(*crop_scale)
    ratio = torch.exp(u(math.log(crop_ratio[0]), math.log(crop_ratio[1])))  # width / height
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # crop size as a fraction of the image side
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1.0 - w) * u(-1.0, 1.0)  # crop centre in [-1, 1] image coordinates, crop kept inside the image
    cy = (1.0 - h) * u(-1.0, 1.0)
    return dict(w=w, h=h, cx=cx, cy=cy, brightness=u(1 - brightness, 1 + brightness),
                contrast=u(1 - contrast, 1 + contrast), saturation=u(1 - saturation, 1 + saturation),
                hue=u(-hue, hue))


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b)[:, None]


def _rotate_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Hue shift by `hue` turns (fraction of a full turn): a rotation of the chroma plane in YIQ space."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    a = 2 * math.pi * hue
    cos, sin = torch.cos(a), torch.sin(a)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
                       torch.stack([zero, sin, cos], -1)], -2)  # (B, 3, 3)
    m = from_yiq @ rot @ to_yiq
    return torch.einsum("bij,bjhw->bihw", m, x)


def apply_augment(images: torch.Tensor, params: dict) -> torch.Tensor:
    """(B, 3, H, W) or (B, F, 3, H, W) unit images -> the same shape; all F frames of a sample share params."""
    with torch.autocast(device_type=images.device.type, enabled=False):  # pixels stay float32 under bf16 autocast
        return _apply_augment(images.float(), params)


def _apply_augment(images: torch.Tensor, params: dict) -> torch.Tensor:
    clip = images.ndim == 5
    if not clip and images.ndim != 4:
        raise ValueError(f"images must be (B, 3, H, W) or (B, F, 3, H, W), got {tuple(images.shape)}")
    B = images.shape[0]
    nf = images.shape[1] if clip else 1
    x = images.flatten(0, 1) if clip else images
    p = {k: v.to(device=x.device, dtype=x.dtype).repeat_interleave(nf) for k, v in params.items()}
    # Random resized crop: one affine sampling grid per image, output at the input resolution.
    zero = torch.zeros_like(p["w"])
    theta = torch.stack([torch.stack([p["w"], zero, p["cx"]], -1), torch.stack([zero, p["h"], p["cy"]], -1)], -2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Colour jitter (fixed order: brightness, contrast, saturation, hue), clamped to [0, 1] after each.
    x = (x * p["brightness"].view(-1, 1, 1, 1)).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * p["contrast"].view(-1, 1, 1, 1)).clamp(0, 1)
    gray = _gray(x)
    x = (gray + (x - gray) * p["saturation"].view(-1, 1, 1, 1)).clamp(0, 1)
    x = _rotate_hue(x, p["hue"]).clamp(0, 1)
    return x.view(B, nf, *x.shape[1:]) if clip else x


def random_resized_crop_and_jitter(images_unit: torch.Tensor, generator: torch.Generator | None = None,
                                   **kwargs) -> torch.Tensor:
    """Sample per-sample parameters from `generator` and apply them (see `sample_augment_params`)."""
    params = sample_augment_params(images_unit.shape[0], generator, device=images_unit.device, **kwargs)
    return apply_augment(images_unit, params)
