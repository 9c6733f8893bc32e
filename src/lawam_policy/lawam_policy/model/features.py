"""Frozen DINOv3 ViT-B/16 feature encoder E and the shared image preprocessing.

f_t = E(o_t): 14x14 = 196 patch tokens x 768; the CLS and register tokens are dropped. The encoder is frozen
and always runs without gradient. Pretrained weights only ever come from a local directory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import DINOv3ViTConfig, DINOv3ViTModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_image(image, what: str = "image") -> None:
    """ValueError naming the problem for anything but an HxWx3 uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8, got {image.dtype}")
    if image.ndim != 3:
        raise ValueError(f"{what} must have shape HxWx3, got shape {image.shape}")
    if image.shape[2] != 3:
        raise ValueError(f"{what} must have 3 (RGB) channels, got {image.shape[2]} (shape {image.shape})")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty (shape {image.shape})")


def _resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) float -> (B, 3, size, size): shorter side to `size`, then a centre crop."""
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top:top + size, left:left + size]
    return x.clamp(0.0, 1.0)


def to_unit_images(images, size: int, device=None) -> torch.Tensor:
    """Images -> (B, 3, size, size) float32 in [0, 1], batched where shapes allow.

    Accepts a list of HxWx3 uint8 arrays (any sizes), a (B, H, W, 3) uint8 array/tensor, or a float
    (B, 3, size, size) tensor already in [0, 1] (the "preprocessed" form a training loader may produce).
    """
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"preprocessed images must be (B, 3, {size}, {size}) floats, got {tuple(images.shape)}")
        return _resize_center_crop(images.to(device=device, dtype=torch.float32), size)
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"image tensor must be (B, H, W, 3) uint8, got {tuple(images.shape)} {images.dtype}")
        images = list(images.cpu().numpy())
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError("no images given")
    for i, img in enumerate(images):
        check_image(img, f"image {i}")
    # Group equal shapes so the resize runs batched.
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(img.shape, []).append(i)
    out = [None] * len(images)
    for idx in by_shape.values():
        batch = torch.from_numpy(np.stack([images[i] for i in idx])).to(device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        for j, i in enumerate(idx):
            out[i] = _resize_center_crop(batch[j:j + 1], size)
    return torch.cat(out, dim=0)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


class FeatureEncoder(nn.Module):
    """Frozen DINOv3 (transformers' DINOv3ViTModel) -> (B, 196, 768) patch features."""

    def __init__(self, dinov3: dict, image_size: int, pretrained_path: str | None = None):
        super().__init__()
        self.image_size = image_size
        cfg = DINOv3ViTConfig(**dinov3)
        if pretrained_path:
            self.vit = load_dinov3(pretrained_path)
        else:
            self.vit = DINOv3ViTModel(cfg)
        self.num_prefix = 1 + int(self.vit.config.num_register_tokens)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen: always in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, unit_images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, N, C) patch tokens (CLS and registers dropped)."""
        p = next(self.vit.parameters())
        x = normalize(unit_images.to(device=p.device, dtype=torch.float32), IMAGENET_MEAN, IMAGENET_STD)
        hidden = self.vit(pixel_values=x.to(p.dtype)).last_hidden_state
        return hidden[:, self.num_prefix:]


def load_dinov3(path: str | Path) -> DINOv3ViTModel:
    """Load DINOv3 from a local snapshot directory; never downloads."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"DINOv3 snapshot directory {path} does not exist")
    return DINOv3ViTModel.from_pretrained(str(path), local_files_only=True)
