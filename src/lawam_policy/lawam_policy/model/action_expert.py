"""Alternate-DiT action expert: 4 blocks x 4 layers, hidden 1024.

Action tokens (noisy action + the VLM's action-query state + a physical-time code) self-attend; each layer's
cross-attention alternates between the VLM hidden states (even layers) and the dynamics stream built from the
current features f_t and the LaWM subgoal f_hat (odd layers). The flow time tau conditions every layer through
adaLN-Zero. Context keys/values are projected once per chunk (`context`) and reused by every Euler step.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import CrossAttention, Mlp, SelfAttention, TimeEmbedder, modulate


class ExpertLayer(nn.Module):
    def __init__(self, width: int, heads: int, context_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.self_attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.cross_attn = CrossAttention(width, context_dim, heads)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(width, mlp_ratio)
        self.ada = nn.Linear(width, 9 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, mod, kv, x_valid, ctx_valid):
        """mod: this layer's adaLN modulation (B, 9*width) for the current flow time."""
        s1, c1, g1, s2, c2, g2, s3, c3, g3 = mod[:, None].chunk(9, dim=-1)
        x = x + g1 * self.self_attn(modulate(self.norm1(x), s1, c1), x_valid)
        x = x + g2 * self.cross_attn(modulate(self.norm2(x), s2, c2), kv, ctx_valid)
        return x + g3 * self.mlp(modulate(self.norm3(x), s3, c3))


class AlternateDiT(nn.Module):
    def __init__(self, config):
        super().__init__()
        w = config.expert_width
        self.dyn_proj = nn.Linear(config.feature_dim, w)
        self.dyn_pos = nn.Parameter(torch.randn(1, 1, config.num_patches, w) * 0.02)
        self.dyn_type = nn.Parameter(torch.randn(1, 2, 1, w) * 0.02)  # current vs predicted subgoal
        self.subgoal_conditioning = config.subgoal_conditioning
        self.query_proj = nn.Linear(config.vlm_hidden, w)
        self.time_embed = TimeEmbedder(w, config.time_code_dim, config.time_min_period_s, config.time_max_period_s)
        # Flow time tau in [0, 1]: periods from 1e-3 to 4 resolve it finely without wrapping.
        self.tau_embed = TimeEmbedder(w, config.time_code_dim, 1e-3, 4.0)
        self.action_in = nn.ModuleDict({e: nn.Linear(config.net_action_dim(e), w) for e in config.embodiments})
        self.layers = nn.ModuleList([
            ExpertLayer(w, config.expert_heads, config.vlm_hidden if i % 2 == 0 else w, config.mlp_ratio)
            for i in range(config.expert_depth)])
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(w, 2 * w)
        nn.init.zeros_(self.final_ada.weight)
        nn.init.zeros_(self.final_ada.bias)
        self.action_out = nn.ModuleDict({e: nn.Linear(w, config.net_action_dim(e)) for e in config.embodiments})

    def context(self, vlm_states, vlm_valid, f_t, f_hat) -> dict:
        """Project the two context streams to keys/values once per chunk."""
        dtype = self.dyn_proj.weight.dtype
        # w/o LaWM (Fig. 6 ablation, subgoal_conditioning False): the f_hat slot is left out of the dynamics
        # stream (the same as masking it), which then holds the current features only.
        frames = [f_t, f_hat] if self.subgoal_conditioning else [f_t]
        dyn = self.dyn_proj(torch.stack(frames, dim=1).to(dtype)) + self.dyn_pos + self.dyn_type[:, :len(frames)]
        dyn = dyn.flatten(1, 2)
        vlm_states = vlm_states.to(dtype)
        kv = [layer.cross_attn.context_kv(vlm_states if i % 2 == 0 else dyn) for i, layer in enumerate(self.layers)]
        return dict(kv=kv, vlm_valid=vlm_valid, dyn_valid=None)

    def token_base(self, query_states, times) -> torch.Tensor:
        """The noise-independent part of each action token: VLM query state + physical-time code."""
        B, H = times.shape
        return self.query_proj(query_states.to(self.query_proj.weight.dtype)) + \
            self.time_embed(times.reshape(-1)).view(B, H, -1)

    def modulations(self, tau: torch.Tensor) -> list:
        """adaLN modulation of every layer (and the final norm) for flow times tau (B,). It depends on tau
        only, so the sampler computes it for all Euler steps at once instead of re-reading these weights."""
        cond = F.silu(self.tau_embed(tau))
        return [layer.ada(cond) for layer in self.layers] + [self.final_ada(cond)]

    def forward(self, noisy, tau, base, valid, ctx, embodiment: str, mods: list | None = None):
        """noisy (B, H, D) at flow time tau (B,) -> predicted velocity (B, H, D)."""
        dtype = base.dtype
        x = self.action_in[embodiment](noisy.to(dtype)) + base
        mods = self.modulations(tau) if mods is None else mods
        for i, layer in enumerate(self.layers):
            x = layer(x, mods[i], ctx["kv"][i], valid, ctx["vlm_valid"] if i % 2 == 0 else ctx["dyn_valid"])
        shift, scale = mods[-1][:, None].chunk(2, dim=-1)
        return self.action_out[embodiment](modulate(self.final_norm(x), shift, scale)).float()
