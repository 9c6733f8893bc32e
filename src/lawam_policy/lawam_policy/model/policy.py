"""LaWAMPolicy: the whole two-stage model: its modules, the two stages' losses, parameter groups and inference.

Input checking, normalisation and the inpainting context live in `processor.LaWAMProcessor`; checkpoint
files in `checkpoint.py` (save_pretrained / from_pretrained delegate there).

Modules: `encoder` (frozen DINOv3), `idm` + `aux_heads` (stage 1, training only), `lawm` (stage 1, frozen in
stage 2), `vlm` (Qwen3-VL prior with its queries and aggregator) and `expert` (Alternate-DiT).

Training batches (dict; B samples of ONE embodiment):
    images_t      (B, V, H, W, 3) uint8, or (B, V, 3, S, S) float in [0, 1] (already resized): view 0 = primary.
                  (B, H, W, 3) / (B, 3, S, S) is read as a single view.
    images_tT     the same for the frame at t + T (only its primary view is used).
    features_t, features_tT   optional precomputed DINOv3 features (B, 196, C); they replace the images' encoding.
    actions       (B, H, 8*arms) wire format (position, quaternion xyzw, gripper), normalised here with the
                  checkpoint statistics; or (B, H, 10*arms) already normalised network actions (position,
                  6D rotation, gripper) with actions_normalized=True (see action_codec.Normalizer).
    action_mask   (B, H) bool, True for real tokens (padding at the end); defaults to all True.
    timestamps    (B, H) float seconds of each action token (k / f_b; padded entries are ignored).
    states_t, states_tT       (B, 8*arms) wire-format EEF states (stage 1 auxiliary head; optional).
    z_star        optional (B, z_tokens, z_dim) teacher latents of the frozen stage-1 IDM for these samples
                  (stage 2); computed from the features when absent.
    embodiment    str, a key of config.embodiments.
    instructions  list of B strings.
Stage 1: `latent_action_losses(batch)`; stage 2: `training_losses(batch)`. Both return a dict of scalar
tensors with "loss" the sum to back-propagate; `parameter_groups(stage)` gives the optimiser groups.
In training mode with config.stage1_augment, stage 1 on image batches gives the IDM encoder and LaWM two different
random crop + colour-jitter views of the clip (model/augment.py), each shared by frames t and t + T; never with
precomputed features, in eval mode, or at inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from . import checkpoint
from .action_codec import Normalizer
from .action_expert import AlternateDiT
from .augment import random_resized_crop_and_jitter
from .config import LaWAMConfig
from .features import FeatureEncoder
from .flow_matching import euler_sample, flow_matching_loss
from .latent_action import IDMEncoder, LaWM, AuxStateHead, kl_to_standard_normal, reparameterize
from .processor import LaWAMProcessor
from .tokenizer import build_builtin_tokenizer, load_tokenizer, special_ids
from .vlm_prior import VLMPrior, load_qwen3vl_weights


@dataclass
class ActionChunkPrediction:
    timestamps: np.ndarray  # (H,) seconds, k / control_hz
    actions: np.ndarray  # (H, 8*arms) wire format, de-normalised
    subgoal: np.ndarray  # (196, C) LaWM-predicted features at t + T
    current_features: np.ndarray  # (196, C) DINOv3 features of the primary image
    z_hat: np.ndarray  # (z_tokens, z_dim) predicted latent action
    embodiment: str
    action_names: list
    control_hz: float


class LaWAMPolicy(nn.Module):
    def __init__(self, config: LaWAMConfig, tokenizer=None):
        super().__init__()
        config.validate()
        self.config = config
        self.processor = LaWAMProcessor(config)
        c = config
        self.encoder = FeatureEncoder(c.dinov3, c.image_size, c.dinov3_path)
        dims = (c.feature_dim, c.num_patches)
        self.idm = IDMEncoder(*dims, c.idm_width, c.idm_depth, c.idm_heads, c.z_tokens, c.z_dim, c.mlp_ratio)
        self.lawm = LaWM(*dims, c.lawm_width, c.lawm_depth, c.lawm_heads, c.z_tokens, c.z_dim, c.mlp_ratio)
        self.aux_heads = nn.ModuleDict({e: AuxStateHead(c.net_action_dim(e), c.z_tokens * c.z_dim, c.aux_hidden)
                                        for e in c.embodiments})
        self.vlm = self.expert = None
        if c.components == "all":
            if tokenizer is None:
                tokenizer = (load_tokenizer(c.qwen3vl_path) if c.qwen3vl_path else
                             build_builtin_tokenizer(min(512, c.qwen3vl["text_config"]["vocab_size"])))
            self.vlm = VLMPrior(c, tokenizer, special_ids(tokenizer))
            if c.qwen3vl_path:
                load_qwen3vl_weights(self.vlm.qwen, c.qwen3vl_path)
            self.expert = AlternateDiT(c)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.lawm.parameters()).device

    @property
    def tokenizer(self):
        return None if self.vlm is None else self.vlm.tokenizer

    def normalizer(self, embodiment: str | None, kind: str = "action") -> Normalizer:
        return self.processor.normalizer(embodiment, kind)

    def _require_stage2(self):
        if self.vlm is None:
            raise ValueError("this policy was built with components='stage1' (no VLM prior / action expert)")

    def encode_features(self, unit_images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, 196, C) float32 frozen DINOv3 features."""
        return self.encoder(unit_images).float()

    def _batch_features(self, batch, key):
        if f"features_{key}" in batch:
            return torch.as_tensor(batch[f"features_{key}"], device=self.device).float()
        return self.encode_features(self.processor.views(batch[f"images_{key}"], self.device)[:, 0])

    def _lawm_frozen(self, f_t, z):
        """LaWM with detached weights: gradient reaches z_hat, never LaWM (frozen in stage 2)."""
        params = {n: p.detach() for n, p in self.lawm.named_parameters()}
        return functional_call(self.lawm, params, (f_t.to(self._dtype(self.lawm)), z.to(self._dtype(self.lawm))))

    def _time_inputs(self, times: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, H) token times in seconds -> what the time codes of the VLM's action queries and the expert's
        tokens see: the seconds themselves (physical-time encoding, Eq. 7), or with time_encoding "index" (the
        Fig. 7 baseline) token k's index times time_index_step_s, the same for every control rate."""
        if self.config.time_encoding == "seconds":
            return times
        k = torch.arange(times.shape[1], device=times.device, dtype=times.dtype).expand_as(times)
        return torch.where(valid, k * self.config.time_index_step_s, torch.zeros_like(times))

    @staticmethod
    def _dtype(module):
        return next(module.parameters()).dtype

    # ------------------------------------------------------------------ stage 1
    def _stage1_augments(self, batch) -> bool:
        """Augment only in training mode, when enabled, and when both frames come as images (not features)."""
        return (self.training and self.config.stage1_augment
                and "features_t" not in batch and "features_tT" not in batch)

    def _augment(self, clip: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(B, F, 3, S, S) unit clip -> one augmented view, the same crop + jitter on every frame of a sample."""
        c = self.config
        return random_resized_crop_and_jitter(
            clip, generator, crop_scale=tuple(c.augment_crop_scale), crop_ratio=tuple(c.augment_crop_ratio),
            brightness=c.augment_brightness, contrast=c.augment_contrast, saturation=c.augment_saturation,
            hue=c.augment_hue)

    def latent_action_losses(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Eq. 4: feature prediction + lambda_s * auxiliary state + beta * KL."""
        c = self.config
        if self._stage1_augments(batch):
            # Two augmented views of the clip: one for the IDM encoder, one for LaWM (input and target), each
            # with the same crop + jitter on frames t and t + T.
            clip = torch.stack([self.processor.views(batch[k], self.device)[:, 0] for k in ("images_t", "images_tT")],
                               1)
            enc_view = self._augment(clip, generator)
            dec_view = self._augment(clip, generator)
            B = clip.shape[0]
            feats = self.encode_features(torch.cat([enc_view, dec_view], 0).flatten(0, 1)).unflatten(0, (2, B, 2))
            (e_t, e_tT), (f_t, f_tT) = feats[0].unbind(1), feats[1].unbind(1)
        else:
            f_t, f_tT = self._batch_features(batch, "t"), self._batch_features(batch, "tT")
            e_t, e_tT = f_t, f_tT
        dt = self._dtype(self.idm)
        mean, logvar = self.idm(e_t.to(dt), e_tT.to(dt))
        z = reparameterize(mean.float(), logvar.float(), generator)
        pred = self.lawm(f_t.to(dt), z.to(dt)).float()
        feature = F.mse_loss(pred, f_tT)
        kl = kl_to_standard_normal(mean.float(), logvar.float())
        out = dict(feature=feature, kl=kl)
        loss = feature + c.kl_beta * kl
        if "states_t" in batch and "states_tT" in batch:
            emb = self.config.layout(batch.get("embodiment")).embodiment
            s_t, s_tT = self.processor.states(batch, emb, self.device)
            head = self.aux_heads[emb]
            state = F.mse_loss(head(s_t.to(self._dtype(head)), z.to(self._dtype(head))).float(), s_tT)
            out["state"] = state
            loss = loss + c.lambda_state * state
        out["loss"] = loss
        return out

    @torch.no_grad()
    def teacher_latent(self, f_t, f_tT) -> torch.Tensor:
        """z*: posterior mean of the frozen stage-1 IDM encoder."""
        dt = self._dtype(self.idm)
        return self.idm(f_t.to(dt), f_tT.to(dt))[0].float()

    # ------------------------------------------------------------------ stage 2
    def training_losses(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Eq. 5: ||z_hat - z*||^2 + lambda_g ||f_hat - f_tT||^2 + L_FM, with Knowledge Insulation."""
        self._require_stage2()
        c = self.config
        emb = c.layout(batch.get("embodiment")).embodiment
        unit = self.processor.views(batch["images_t"], self.device)
        f_t = (torch.as_tensor(batch["features_t"], device=self.device).float() if "features_t" in batch
               else self.encode_features(unit[:, 0]))
        f_tT = self._batch_features(batch, "tT")
        # z* is a deterministic function of the frozen stage-1 IDM: callers may cache it per sample.
        z_star = (torch.as_tensor(batch["z_star"], device=self.device).float() if "z_star" in batch
                  else self.teacher_latent(f_t, f_tT))

        target = self.processor.stage2_targets(batch, emb, self.device)
        actions, valid, times = target.actions, target.valid, target.times

        codes = self._time_inputs(times, valid)
        state = self.vlm.encode_prefix(unit, target.instructions, codes, valid)
        z_hat = self.vlm.aggregate(state["latent_states"])
        distill = F.mse_loss(z_hat, z_star)
        f_hat = self._lawm_frozen(f_t, z_hat).float()
        subgoal = F.mse_loss(f_hat, f_tT)

        # Flow matching sees the VLM only through the insulated action-query pass and detached context; with
        # knowledge_insulation off (the w/o-KI ablation, Fig. 6) its gradient reaches the VLM and z_hat too.
        ki = c.knowledge_insulation
        queries = self.vlm.encode_action_queries(state, insulate=ki)
        ctx = self.expert.context(state["prefix"].detach() if ki else state["prefix"], state["prefix_valid"], f_t,
                                  self._expert_subgoal(f_t, f_hat, z_star, ki, generator))
        base = self.expert.token_base(queries, codes)
        flow = flow_matching_loss(lambda x, tau: self.expert(x, tau, base, valid, ctx, emb), actions, valid,
                                  generator)
        loss = c.lambda_distill * distill + c.lambda_subgoal * subgoal + flow
        return dict(loss=loss, distill=distill, subgoal=subgoal, flow=flow)

    def _expert_subgoal(self, f_t, f_hat, z_star, insulated: bool, generator) -> torch.Tensor:
        """The subgoal the expert is trained on: f_hat from z_hat (Eq. 5), or for a share
        `subgoal_teacher_forcing` of the samples LaWM(f_t, z*). Early in stage 2 z_hat is noise, and an expert
        trained only on it learns to ignore the subgoal for good (our sim runs: moving z from z_hat to 0 or to
        3 changed the chunk by 1 mm)."""
        share = self.config.subgoal_teacher_forcing
        if share <= 0.0:
            return f_hat.detach() if insulated else f_hat
        with torch.no_grad():
            f_star = self._lawm_frozen(f_t, z_star).float()
        teacher = torch.rand(f_t.shape[0], generator=generator, device=generator.device if generator else None)
        teacher = (teacher < share).to(f_hat.device)[:, None, None]
        return torch.where(teacher, f_star, f_hat.detach() if insulated else f_hat)

    def parameter_groups(self, stage: int) -> list[dict]:
        """Optimiser groups (AdamW) with the notes' learning rates; frozen modules get requires_grad=False."""
        c = self.config
        stage1 = [self.idm, self.lawm, self.aux_heads]
        if stage == 1:
            for m in stage1:
                m.requires_grad_(True)
            return [dict(params=[p for m in stage1 for p in m.parameters()], lr=c.lr_expert, name="latent_action")]
        if stage != 2:
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self._require_stage2()
        for m in stage1:
            m.requires_grad_(False)
        self.vlm.requires_grad_(True)
        self.expert.requires_grad_(True)
        return [dict(params=list(self.expert.parameters()), lr=c.lr_expert, name="expert"),
                dict(params=list(self.vlm.parameters()), lr=c.lr_other, name="vlm")]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _prefix(self, unit, instruction, control_hz):
        """Everything computed once per chunk from processed (1, V, 3, S, S) unit images: DINOv3, the VLM
        (prefix + action queries), z_hat, LaWM subgoal, the expert's context keys/values and the
        noise-independent token part."""
        H = self.config.horizon_steps(control_hz)
        times = torch.arange(H, device=self.device, dtype=torch.float32)[None] / float(control_hz)
        valid = torch.ones(1, H, dtype=torch.bool, device=self.device)
        f_t = self.encode_features(unit[:, 0])
        codes = self._time_inputs(times, valid)
        state = self.vlm.encode_prefix(unit, [instruction], codes, valid, fused_queries=True)
        z_hat = self.vlm.aggregate(state["latent_states"])
        f_hat = self.lawm(f_t.to(self._dtype(self.lawm)), z_hat.to(self._dtype(self.lawm))).float()
        ctx = self.expert.context(state["prefix"], state["prefix_valid"], f_t, f_hat)
        base = self.expert.token_base(state["queries"], codes)
        return dict(H=H, times=times, valid=valid, f_t=f_t, z_hat=z_hat, f_hat=f_hat, ctx=ctx, base=base)

    @torch.inference_mode()
    def prefix_only(self, images, instruction, control_hz, embodiment=None):
        """The per-chunk prefix (DINOv3 + VLM + LaWM + context projection) without denoising (benchmarks)."""
        self._require_stage2()
        images = self.processor.check_request(images, instruction, control_hz, None, embodiment)
        return self._prefix(self.processor.unit_images(images, self.device), instruction, control_hz)

    @torch.inference_mode()
    def predict_chunk(self, images, instruction, control_hz, horizon_s=None, embodiment=None, seed=None,
                      prev_actions=None, prev_timestamps=None) -> ActionChunkPrediction:
        self._require_stage2()
        layout = self.config.layout(embodiment)
        images = self.processor.check_request(images, instruction, control_hz, horizon_s, layout.embodiment)
        H = self.config.horizon_steps(control_hz)
        inpaint = self.processor.inpaint_context(prev_actions, prev_timestamps, control_hz, layout.embodiment,
                                                 self.device)

        p = self._prefix(self.processor.unit_images(images, self.device), instruction, control_hz)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(int(seed))
        steps = self.config.num_denoise_steps
        mods = self.expert.modulations(torch.arange(steps, device=self.device, dtype=torch.float32) / steps)

        def velocity(x, tau, step):
            step_mods = [m[step:step + 1] for m in mods]
            return self.expert(x, tau, p["base"], p["valid"], p["ctx"], layout.embodiment, step_mods)

        x = euler_sample(velocity, (1, H, self.config.net_action_dim(layout.embodiment)), steps, self.device, gen,
                         inpaint.known, inpaint.mask, self.config.sampling_noise_scale)
        actions = self.processor.decode_chunk(x, layout.embodiment, inpaint)
        subgoal = p["f_hat"][0].cpu().float().numpy()
        if not (np.isfinite(actions).all() and np.isfinite(subgoal).all()):
            raise FloatingPointError("LaWAM produced non-finite actions or subgoal features")
        return ActionChunkPrediction(
            timestamps=np.arange(H, dtype=np.float64) / float(control_hz), actions=actions.astype(np.float64),
            subgoal=subgoal, current_features=p["f_t"][0].cpu().float().numpy(),
            z_hat=p["z_hat"][0].cpu().float().numpy(), embodiment=layout.embodiment, action_names=layout.names,
            control_hz=float(control_hz))

    # ------------------------------------------------------------------ reporting
    def parameter_report(self) -> dict:
        def count(m):
            return 0 if m is None else sum(p.numel() for p in m.parameters())

        rep = dict(encoder=count(self.encoder), idm=count(self.idm), lawm=count(self.lawm),
                   aux_heads=count(self.aux_heads), vlm=0, vlm_vision=0, vlm_text=0, queries=0, expert=0)
        if self.vlm is not None:
            rep["vlm"] = count(self.vlm.qwen)
            rep["vlm_vision"] = count(self.vlm.qwen.visual)
            rep["vlm_text"] = count(self.vlm.qwen.language_model)
            rep["queries"] = count(self.vlm) - rep["vlm"]  # latent/action queries + aggregator
            rep["expert"] = count(self.expert)
        # Deployed model: everything but the training-only IDM encoder and auxiliary heads.
        rep["total"] = rep["encoder"] + rep["lawm"] + rep["vlm"] + rep["queries"] + rep["expert"]
        return rep

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None,
                        state_dict: dict | None = None) -> Path:
        """Config, weights (floating tensors cast to `dtype` if given) and tokenizer into `directory`; see
        checkpoint.save_checkpoint."""
        return checkpoint.save_checkpoint(self, directory, dtype=dtype, state_dict=state_dict)

    @classmethod
    def from_pretrained(cls, directory: str | Path, components: str | None = None, device=None, dtype=None,
                        qwen3vl_path: str | None = None) -> "LaWAMPolicy":
        """Load a checkpoint (stored dtype unless `dtype` is given); see checkpoint.load_checkpoint."""
        return checkpoint.load_checkpoint(cls, directory, components, device, dtype, qwen3vl_path)
