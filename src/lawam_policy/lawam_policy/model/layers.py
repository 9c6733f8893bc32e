"""Small transformer building blocks shared by the IDM encoder, LaWM and the action expert."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self, width: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(width * ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def key_mask(valid: torch.Tensor | None) -> torch.Tensor | None:
    """(B, S) bool of valid keys -> a boolean SDPA mask broadcast over heads and queries."""
    return None if valid is None else valid[:, None, None, :]


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, valid: torch.Tensor | None = None):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(valid))
        return self.proj(merge_heads(out))


class CrossAttention(nn.Module):
    """Queries from the action tokens, keys/values from a context that is projected once (`context_kv`)."""

    def __init__(self, width: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_dim, 2 * width)
        self.proj = nn.Linear(width, width)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(context).chunk(2, dim=-1)
        return split_heads(k, self.heads), split_heads(v, self.heads)

    def forward(self, x, kv: tuple[torch.Tensor, torch.Tensor], valid: torch.Tensor | None = None):
        q = split_heads(self.q(x), self.heads)
        k, v = kv
        if q.shape[0] != k.shape[0]:  # context shared by several samples (e.g. a batch of noises)
            k, v = (t.expand(q.shape[0], -1, -1, -1) for t in (k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(valid))
        return self.proj(merge_heads(out))


class TransformerBlock(nn.Module):
    """Plain pre-norm block (the IDM encoder)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class AdaLNZeroBlock(nn.Module):
    """DiT block conditioned through adaptive layer norm; the modulation starts at zero so every block starts
    as the identity (adaLN-Zero), which is what keeps conditioning on z stable (the paper found additive token
    injection unstable)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(width, mlp_ratio)
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, cond):
        s1, c1, g1, s2, c2, g2 = self.ada(F.silu(cond))[:, None].chunk(6, dim=-1)
        x = x + g1 * self.attn(modulate(self.norm1(x), s1, c1))
        return x + g2 * self.mlp(modulate(self.norm2(x), s2, c2))


def sinusoidal_code(t: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """Sinusoidal code of a real-valued t, periods geometrically spaced in [min_period, max_period].

    Used for physical time (seconds) of each action token and for the flow-matching time tau.
    """
    half = dim // 2
    periods = min_period * (max_period / min_period) ** (torch.arange(half, device=t.device, dtype=torch.float64)
                                                         / max(half - 1, 1))
    angles = (2 * math.pi) * t.to(torch.float64)[..., None] / periods
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(torch.float32)


class TimeEmbedder(nn.Module):
    """Sinusoidal code -> MLP; shared shape for the flow time tau (adaLN) and physical seconds."""

    def __init__(self, width: int, code_dim: int, min_period: float, max_period: float):
        super().__init__()
        self.code_dim, self.min_period, self.max_period = code_dim, min_period, max_period
        self.mlp = nn.Sequential(nn.Linear(code_dim, width), nn.SiLU(), nn.Linear(width, width))

    def code(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal_code(t, self.code_dim, self.min_period, self.max_period)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        w = self.mlp[0].weight
        return self.mlp(self.code(t).to(device=w.device, dtype=w.dtype))
