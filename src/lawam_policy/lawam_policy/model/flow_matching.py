"""Conditional flow matching on action chunks: a_tau = tau*a + (1-tau)*eps, the expert predicts a - eps.

Sampling integrates from pure noise (tau = 0) to actions (tau = 1) with a fixed number of Euler steps. Given
known actions (the still-to-be-executed part of the previous chunk), the sampler inpaints: after every step the
known entries are put back on the straight path between the same noise and the known value, and at tau = 1
they equal the known value exactly.
"""
from __future__ import annotations

from typing import Callable

import torch


def flow_matching_loss(velocity_fn: Callable, actions: torch.Tensor, valid: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """actions (B, H, D) normalised, valid (B, H) bool; padded tokens do not count."""
    B = actions.shape[0]
    tau = torch.rand(B, generator=generator, device=actions.device, dtype=actions.dtype)
    eps = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
    t = tau[:, None, None]
    x_tau = t * actions + (1 - t) * eps
    err = (velocity_fn(x_tau, tau) - (actions - eps)).pow(2).mean(-1)
    w = valid.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1.0)


@torch.no_grad()
def euler_sample(velocity_fn: Callable, shape, steps: int, device, generator: torch.Generator | None = None,
                 known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
                 noise_scale: float = 1.0) -> torch.Tensor:
    """velocity_fn(x, tau, step) -> velocity; tau = step / steps for step = 0 .. steps-1. The start x_0 is
    noise_scale * N(0, I) (0: deterministic, the generator unused)."""
    eps = torch.randn(shape, generator=generator, device=device, dtype=torch.float32) * noise_scale
    x = eps
    if known is not None:
        m = known_mask[..., None].to(torch.bool)
    dt = 1.0 / steps
    for i in range(steps):
        tau = torch.full((shape[0],), i * dt, device=device, dtype=torch.float32)
        x = x + dt * velocity_fn(x, tau, i)
        if known is not None:
            t_next = (i + 1) * dt
            x = torch.where(m, known if i == steps - 1 else t_next * known + (1 - t_next) * eps, x)
    return x
