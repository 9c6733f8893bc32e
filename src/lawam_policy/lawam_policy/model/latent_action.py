"""Stage 1: the latent action model. Its inverse-dynamics encoder q(z | f_t, f_{t+T}) infers a continuous
Gaussian latent action z; its forward decoder, LaWM, predicts f_{t+T} from f_t and z and is kept for stage 2.

Loss (Eq. 4): ||LaWM(f_t, z) - f_{t+T}||^2 + lambda_s ||g(s_t, z) - s_{t+T}||^2 + beta KL(q || N(0, I)).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import AdaLNZeroBlock, TransformerBlock


class IDMEncoder(nn.Module):
    """V-JEPA2-style: current and future patch tokens in one sequence with spatio-temporal position
    embeddings, processed jointly; learned readout tokens give the mean and log-variance of z."""

    def __init__(self, feature_dim, num_patches, width, depth, heads, z_tokens, z_dim, mlp_ratio=4.0):
        super().__init__()
        self.z_tokens, self.z_dim = z_tokens, z_dim
        self.proj_in = nn.Linear(feature_dim, width)
        self.pos_space = nn.Parameter(torch.randn(1, 1, num_patches, width) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(1, 2, 1, width) * 0.02)  # frame t and frame t+T
        self.readout = nn.Parameter(torch.randn(1, z_tokens, width) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2 * z_dim)

    def forward(self, f_t, f_tT):
        """-> (mean, logvar), each (B, z_tokens, z_dim)."""
        x = self.proj_in(torch.stack([f_t, f_tT], dim=1)) + self.pos_space + self.pos_time
        x = torch.cat([self.readout.expand(x.shape[0], -1, -1), x.flatten(1, 2)], dim=1)
        for blk in self.blocks:
            x = blk(x)
        mean, logvar = self.head(self.norm(x[:, :self.z_tokens])).chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 8.0)


class LaWM(nn.Module):
    """Latent World Model: transformer over the current patch tokens, conditioned on z through adaLN-Zero,
    predicting the horizon features in one non-iterative pass."""

    def __init__(self, feature_dim, num_patches, width, depth, heads, z_tokens, z_dim, mlp_ratio=4.0):
        super().__init__()
        self.proj_in = nn.Linear(feature_dim, width)
        self.pos = nn.Parameter(torch.randn(1, num_patches, width) * 0.02)
        self.z_embed = nn.Sequential(nn.Linear(z_tokens * z_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.blocks = nn.ModuleList([AdaLNZeroBlock(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width)
        self.proj_out = nn.Linear(width, feature_dim)
        nn.init.zeros_(self.final_ada.weight)
        nn.init.zeros_(self.final_ada.bias)

    def forward(self, f_t, z):
        cond = self.z_embed(z.flatten(1))
        x = self.proj_in(f_t) + self.pos
        for blk in self.blocks:
            x = blk(x, cond)
        shift, scale = self.final_ada(F.silu(cond))[:, None].chunk(2, dim=-1)
        # Residual on f_t: LaWM predicts the change of the scene, the identity is free.
        return f_t + self.proj_out(self.norm(x) * (1 + scale) + shift)


class AuxStateHead(nn.Module):
    """g(s_t, z) -> s_{t+T}: keeps z about embodied motion, not only appearance. Training only."""

    def __init__(self, state_dim, z_flat, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim + z_flat, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, state_dim))

    def forward(self, state, z):
        return state + self.net(torch.cat([state, z.flatten(1)], dim=-1))


def kl_to_standard_normal(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over z's dims, averaged over the batch."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(-1).mean()


def reparameterize(mean, logvar, generator=None):
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + eps * (0.5 * logvar).exp()
