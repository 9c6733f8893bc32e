"""LaWAMProcessor: everything between a caller's raw inputs and the network's tensors, kept out of the model
(as LeRobot's processor_*.py and openpi's transforms are).

Input checking (one clear ValueError per fault), image batches -> unit views, wire actions/states <->
normalised network tensors with the checkpoint's statistics, and the inpainting context that maps the previous
chunk onto this chunk's time grid. LaWAMPolicy then computes on already-processed tensors only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .action_codec import Normalizer
from .config import LaWAMConfig
from .features import check_image, to_unit_images


@dataclass
class InpaintContext:
    """The previous chunk's actions on this chunk's grid. `known` (1, H, net_dim) normalised network actions
    and `mask` (1, H) bool for the denoiser; `rows` {step k: wire row} restored exactly after decoding."""
    known: torch.Tensor | None
    mask: torch.Tensor | None
    rows: dict


@dataclass
class Stage2Targets:
    """Stage-2 action targets: `actions` (B, H, net_dim) normalised, zero where padded; `valid` (B, H) bool;
    `times` (B, H) float32 seconds (0 where padded); `instructions` B strings."""
    actions: torch.Tensor
    valid: torch.Tensor
    times: torch.Tensor
    instructions: list


def _positive_number(x) -> bool:
    return (not isinstance(x, bool) and isinstance(x, (int, float, np.number)) and math.isfinite(x) and x > 0)


class LaWAMProcessor:
    """Stateless apart from the config (its layouts, camera roles and normalisation statistics)."""

    def __init__(self, config: LaWAMConfig):
        self.config = config

    def normalizer(self, embodiment: str | None, kind: str = "action") -> Normalizer:
        """Wire <-> network codec of `embodiment` ("action" or "state" statistics; identity defaults when the
        checkpoint has none). Raises ValueError for an unknown embodiment."""
        layout = self.config.layout(embodiment)
        stats = self.config.normalization.get(layout.embodiment, {}).get(kind)
        return Normalizer(layout, stats)

    # ------------------------------------------------------------------ training batches
    def views(self, images, device=None) -> torch.Tensor:
        """Any accepted batch image form -> (B, V, 3, S, S) float32 in [0, 1] on `device`: uint8
        (B, [V,] H, W, 3) or float (B, [V,] 3, S, S). Raises ValueError for anything else."""
        S = self.config.image_size
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise ValueError("batch images must be a uint8 (B, [V,] H, W, 3) or float (B, [V,] 3, S, S) array")
        x = images if images.ndim == 5 else images[:, None]
        if images.is_floating_point():
            if x.ndim != 5 or x.shape[2] != 3:
                raise ValueError(f"float images must be (B, V, 3, {S}, {S}), got {tuple(images.shape)}")
        elif x.ndim != 5 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"uint8 images must be (B, V, H, W, 3), got {tuple(images.shape)} {images.dtype}")
        B, V = x.shape[:2]
        unit = to_unit_images(x.flatten(0, 1), S, device=device)
        return unit.view(B, V, 3, S, S)

    def states(self, batch: dict, embodiment: str, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised network states (B, net_dim) of frames t and t + T from wire `states_t` / `states_tT`."""
        norm = self.normalizer(embodiment, "state")
        return tuple(norm.encode(torch.as_tensor(batch[k], device=device)) for k in ("states_t", "states_tT"))

    def stage2_targets(self, batch: dict, embodiment: str, device=None) -> Stage2Targets:
        """Checks and normalises a stage-2 batch's actions, mask, timestamps and instructions.

        Raises ValueError for normalised actions of the wrong width, a mask that is not (B, H) or leaves a sample
        without a valid token, or a number of instructions other than B."""
        actions = torch.as_tensor(batch["actions"], device=device).float()
        net_dim = self.config.net_action_dim(embodiment)
        if not batch.get("actions_normalized", False):
            actions = self.normalizer(embodiment).encode(actions)
        elif actions.shape[-1] != net_dim:
            raise ValueError(f"normalised {embodiment} actions must have {net_dim} dims, got {actions.shape[-1]}")
        B, H = actions.shape[:2]
        valid = torch.as_tensor(batch.get("action_mask", np.ones((B, H), bool)), device=device).bool()
        if valid.shape != (B, H) or not valid.any(1).all():
            raise ValueError(f"action_mask must be (B, H) = {(B, H)} with at least one valid token per sample")
        actions = torch.where(valid[..., None], actions, torch.zeros_like(actions))  # padding may hold anything
        times = torch.where(valid, torch.as_tensor(batch["timestamps"], device=device).float(), 0.0)
        instructions = list(batch["instructions"])
        if len(instructions) != B:
            raise ValueError(f"{len(instructions)} instructions for a batch of {B}")
        return Stage2Targets(actions, valid, times, instructions)

    # ------------------------------------------------------------------ inference requests
    def check_request(self, images, instruction, control_hz, horizon_s=None, embodiment=None) -> list:
        """Validates one predict_chunk request; returns the images as a list (primary first).

        images: HxWx3 uint8 RGB arrays, at most one per camera role of `embodiment`; instruction: non-empty str;
        control_hz: positive Hz; horizon_s: None or this checkpoint's T in seconds. Raises ValueError naming the
        fault."""
        if images is None or (isinstance(images, (list, tuple)) and len(images) == 0):
            raise ValueError("no images given: need at least the primary camera image")
        if isinstance(images, np.ndarray):
            images = [images]
        if not isinstance(images, (list, tuple)):
            raise ValueError(f"images must be a list of HxWx3 uint8 arrays, got {type(images).__name__}")
        roles = self.config.cameras(embodiment)
        if len(images) > len(roles):
            raise ValueError(f"{len(images)} images given; {self.config.layout(embodiment).embodiment} takes at "
                             f"most {len(roles)} ({', '.join(roles)})")
        for i, img in enumerate(images):
            check_image(img, "primary image" if i == 0 else f"auxiliary image {i}")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("instruction is empty: a task instruction is required")
        if not _positive_number(control_hz):
            raise ValueError(f"control rate must be a positive number of Hz, got {control_hz!r}")
        if horizon_s is not None:
            if isinstance(horizon_s, bool) or not _positive_number(horizon_s):
                raise ValueError(f"horizon must be a positive number of seconds, got {horizon_s!r}")
            if abs(horizon_s - self.config.horizon_s) > 1e-6:
                raise ValueError(f"horizon {horizon_s} s differs from this checkpoint's T = "
                                 f"{self.config.horizon_s} s (LaWM only knows its trained horizon)")
        return list(images)

    def unit_images(self, images: list, device=None) -> torch.Tensor:
        """Checked request images -> (1, V, 3, S, S) float32 in [0, 1]."""
        return to_unit_images(images, self.config.image_size, device=device)[None]

    def inpaint_context(self, prev_actions, prev_timestamps, control_hz: float, embodiment: str,
                        device=None) -> InpaintContext:
        """Map the previous chunk's remaining wire actions (K, 8*arms) at `prev_timestamps` (K,) seconds from
        this chunk's start onto its grid k / control_hz (nearest step within half a period; times outside
        [0, T) are ignored). Raises ValueError if only one is given, for wrong shapes or non-finite values."""
        if prev_actions is None and prev_timestamps is None:
            return InpaintContext(None, None, {})
        if prev_actions is None or prev_timestamps is None:
            raise ValueError("prev_actions and prev_timestamps must be given together")
        norm = self.normalizer(embodiment)
        a = np.asarray(prev_actions, dtype=np.float64)
        t = np.asarray(prev_timestamps, dtype=np.float64)
        D = norm.layout.dim
        if a.ndim != 2 or a.shape[1] != D:
            raise ValueError(f"prev_actions must be (K, {D}) for {norm.layout.embodiment}, got {a.shape}")
        if t.shape != (a.shape[0],):
            raise ValueError(f"prev_timestamps must be ({a.shape[0]},), got {t.shape}")
        if not (np.isfinite(a).all() and np.isfinite(t).all()):
            raise ValueError("prev_actions / prev_timestamps contain non-finite values")
        H = self.config.horizon_steps(control_hz)
        rows = {}
        for row, ts in zip(a, t):
            k = int(round(ts * control_hz))
            if 0 <= k < H and abs(ts - k / control_hz) <= 0.5 / control_hz:
                rows[k] = row
        if not rows:
            return InpaintContext(None, None, {})
        known = torch.zeros(1, H, self.config.net_action_dim(embodiment), device=device)
        mask = torch.zeros(1, H, dtype=torch.bool, device=device)
        ks = sorted(rows)
        known[0, ks] = norm.encode(torch.tensor(np.stack([rows[k] for k in ks]), dtype=torch.float32)).to(device)
        mask[0, ks] = True
        return InpaintContext(known, mask, rows)

    def decode_chunk(self, x: torch.Tensor, embodiment: str, context: InpaintContext) -> np.ndarray:
        """Denoised (1, H, net_dim) -> (H, 8*arms) float64 wire actions, the inpainted rows restored exactly."""
        actions = self.normalizer(embodiment).decode(x)[0].cpu().double().numpy()
        for k, row in context.rows.items():  # the previous chunk's actions are kept exactly as given
            actions[k] = row
        return actions
