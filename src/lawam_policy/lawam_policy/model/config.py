"""LaWAMConfig: every size and value of the model, one JSON-serialisable dataclass.

Values the paper text lost are ours (see shared/lawam-paper-notes.md); they live here as defaults, never as
constants in code. The same object travels inside every checkpoint (``lawam_config.json``) together with the
action layouts, the normalisation statistics and the camera roles, so a checkpoint is all deployment needs.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..action_layout import KNOWN_LAYOUTS, ActionLayout

CONFIG_NAME = "lawam_config.json"

# Network-side action representation per arm: position (3) + 6D rotation (6) + gripper (1).
NET_ARM_DIM = 10


def _dinov3(hidden: int, intermediate: int, layers: int, heads: int, image_size: int = 224) -> dict:
    # A DINOv3 ViT/16 with 4 register tokens (transformers' default config has 0: set 4).
    return dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                num_attention_heads=heads, patch_size=16, image_size=image_size, num_register_tokens=4,
                layerscale_value=1e-5, rope_theta=100.0, pos_embed_rescale=2.0)


def _qwen3vl(text: tuple, vision: tuple, rope_theta: float, mrope_section: list, max_positions: int,
             deepstack: list) -> dict:
    """A Qwen3-VL config. text: (vocab, hidden, intermediate, layers, heads, kv heads, head dim); vision:
    (depth, hidden, intermediate, heads, position embeddings); the vision tower projects to the text width."""
    vocab, hidden, inter, layers, heads, kv_heads, head_dim = text
    depth, v_hidden, v_inter, v_heads, positions = vision
    text = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, hidden_act="silu",
                max_position_embeddings=max_positions, rms_norm_eps=1e-6, tie_word_embeddings=True,
                rope_parameters=dict(rope_type="default", rope_theta=rope_theta, mrope_section=mrope_section,
                                     mrope_interleaved=True))
    vision = dict(depth=depth, hidden_size=v_hidden, intermediate_size=v_inter, num_heads=v_heads,
                  out_hidden_size=hidden, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                  num_position_embeddings=positions, deepstack_visual_indexes=deepstack,
                  hidden_act="gelu_pytorch_tanh")
    return dict(text_config=text, vision_config=vision)


def _paper_dinov3() -> dict:
    return _dinov3(768, 3072, 12, 12)  # ViT-B/16


def _paper_qwen3vl() -> dict:
    # Qwen3-VL-2B. The text model is cut to its first `vlm_layers` layers when the VLM is built.
    return _qwen3vl((151936, 2048, 6144, 28, 16, 8, 128), (24, 1024, 4096, 16, 2304), 5000000.0, [24, 20, 20],
                    262144, [5, 11, 17])


def _tiny_dinov3() -> dict:
    return _dinov3(32, 64, 1, 2)


def _tiny_qwen3vl() -> dict:
    return _qwen3vl((512, 64, 128, 3, 4, 2, 16), (2, 32, 64, 2, 196), 10000.0, [4, 2, 2], 4096, [0])


def _sim_dinov3() -> dict:
    # A small ViT at 128 px (8x8 = 64 patches), frozen and random: no pretrained weights are reachable offline.
    # With layerscale 1e-5 its blocks start near the identity, so a patch feature is a random projection of
    # that 16x16 patch's pixels, which keeps object positions (measured by the recipe's probe).
    return _dinov3(384, 768, 1, 6, image_size=128)


def _sim_qwen3vl() -> dict:
    return _qwen3vl((512, 128, 384, 3, 4, 2, 32), (2, 96, 192, 4, 64), 10000.0, [8, 4, 4], 4096, [0])


def _default_layouts() -> dict:
    return {name: layout.to_dict() for name, layout in KNOWN_LAYOUTS.items()}


@dataclass
class LaWAMConfig:
    preset: str = "paper"  # the name of the preset this config started from (see from_preset)

    # --- observation / feature space (frozen DINOv3 ViT-B/16) ---
    image_size: int = 224
    dinov3: dict = field(default_factory=_paper_dinov3)
    # Per embodiment, the cameras in the order predict_chunk takes them; the first is the primary (LaWM's view).
    camera_roles: dict = field(default_factory=lambda: {"franka_panda": ["primary", "wrist"],
                                                        "quanta_x1": ["primary", "left_wrist", "right_wrist"]})

    # --- physical horizon ---
    horizon_s: float = 1.2  # T: the chunk length and the LaWM future offset, in seconds

    # --- latent action (stage 1) ---
    z_tokens: int = 4  # z = z_tokens x z_dim continuous Gaussian latent action (a tight bottleneck)
    z_dim: int = 32
    idm_width: int = 768
    idm_depth: int = 24
    idm_heads: int = 12
    lawm_width: int = 768
    lawm_depth: int = 24
    lawm_heads: int = 12
    mlp_ratio: float = 4.0
    aux_hidden: int = 256
    lambda_state: float = 1.0
    kl_beta: float = 1e-4
    # Stage-1 augmentation (training mode, image batches only): the IDM encoder and LaWM each see their own random
    # resized crop + colour jitter, shared by frames t and t + T of that view. Ranges are ours (the paper gives none).
    stage1_augment: bool = True
    augment_crop_scale: tuple = (0.6, 1.0)  # crop area as a fraction of the image
    augment_crop_ratio: tuple = (3 / 4, 4 / 3)  # crop aspect ratio (width / height), log-uniform
    augment_brightness: float = 0.3  # factors drawn from [1 - x, 1 + x]
    augment_contrast: float = 0.3
    augment_saturation: float = 0.3
    augment_hue: float = 0.05  # hue shift drawn from [-x, x] turns

    # --- VLM prior (stage 2) ---
    qwen3vl: dict = field(default_factory=_paper_qwen3vl)
    vlm_layers: int = 16  # keep the first 16 of Qwen3-VL-2B's 28 layers
    num_latent_queries: int = 8  # M
    aggregator_width: int = 512
    max_instruction_tokens: int = 96

    # --- action expert (Alternate-DiT) ---
    expert_width: int = 1024
    expert_blocks: int = 4
    expert_layers_per_block: int = 4
    expert_heads: int = 16
    time_code_dim: int = 256  # sinusoidal code of physical time (seconds)
    time_min_period_s: float = 0.01
    time_max_period_s: float = 10.0
    # Ablation switches (benchmarks/ablations.py); the defaults are the paper's model, so checkpoints written
    # before these fields existed load unchanged.
    subgoal_conditioning: bool = True  # False: w/o LaWM (Fig. 6), the expert's dynamics stream gets no subgoal
    time_encoding: str = "seconds"  # "index" (Fig. 7 baseline): token k coded as k * time_index_step_s
    time_index_step_s: float = 0.1  # index code scale: k coded like k steps at 10 Hz (the same code range)

    # --- flow matching / losses ---
    num_denoise_steps: int = 10
    # Std of the Euler sampler's starting noise x_0 at inference (training always draws N(0, I)): 1 samples the
    # learnt action distribution; below 1 moves the sample toward its mode, 0 is a deterministic chunk. Ours.
    sampling_noise_scale: float = 1.0
    lambda_subgoal: float = 1.0
    # share of stage-2 samples whose expert sees LaWM(f_t, z*) instead of LaWM(f_t, z_hat); ours, 0 = Eq. 5
    subgoal_teacher_forcing: float = 0.0
    lambda_distill: float = 1.0  # weight of ||z_hat - z*||^2; 0: w/o latent-action distillation (Fig. 6)
    knowledge_insulation: bool = True  # False: w/o KI (Fig. 6), flow-matching gradients reach the VLM
    lr_expert: float = 1e-4
    lr_other: float = 1e-5

    # --- embodiments: action layouts + normalisation statistics (network representation) ---
    embodiments: dict = field(default_factory=_default_layouts)
    default_embodiment: str = "franka_panda"
    normalization: dict = field(default_factory=dict)  # embodiment -> {"action": {mean,std}, "state": {mean,std}}
    # embodiment -> control rates (Hz) of the data it was trained on; deployment defaults to the first
    control_rates_hz: dict = field(default_factory=dict)

    # --- build-time options (not needed by a finished checkpoint) ---
    components: str = "all"  # "all" (stage 2 policy) or "stage1" (encoder + IDM + LaWM + aux heads only)
    tokenizer: str = "builtin"  # "builtin" (in-code byte-level BPE) or "checkpoint" (files saved beside)
    dinov3_path: str | None = None  # local DINOv3 snapshot to load weights from at construction
    qwen3vl_path: str | None = None  # local Qwen3-VL snapshot to load weights from at construction

    def __post_init__(self):
        # JSON gives lists back: keep the ranges tuples so a saved config compares equal to its source.
        self.augment_crop_scale = tuple(float(v) for v in self.augment_crop_scale)
        self.augment_crop_ratio = tuple(float(v) for v in self.augment_crop_ratio)

    # ------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LaWAMConfig":
        """The named preset ("paper", "sim", "tiny") with `overrides` (field=value) applied; its `preset` field
        records the name. Raises ValueError for an unknown preset or field."""
        if name == "paper":
            cfg = cls(preset="paper")
        elif name == "tiny":
            cfg = cls(preset="tiny", dinov3=_tiny_dinov3(), z_tokens=4, z_dim=8, idm_width=32, idm_depth=2,
                      idm_heads=2, lawm_width=32, lawm_depth=2, lawm_heads=2, aux_hidden=32,
                      qwen3vl=_tiny_qwen3vl(), vlm_layers=2, num_latent_queries=8, aggregator_width=32,
                      max_instruction_tokens=64, expert_width=64, expert_blocks=2, expert_layers_per_block=2,
                      expert_heads=4, time_code_dim=32)
        elif name == "sim":
            # Sized for lawam-sim-train: trained from scratch on a 2-core CPU in about an hour, features cached.
            cfg = cls(preset="sim", image_size=128, dinov3=_sim_dinov3(), z_tokens=4, z_dim=8, idm_width=128,
                      idm_depth=3, idm_heads=4, lawm_width=128, lawm_depth=3, lawm_heads=4, aux_hidden=128,
                      qwen3vl=_sim_qwen3vl(), vlm_layers=3, num_latent_queries=8, aggregator_width=128,
                      max_instruction_tokens=32, expert_width=128, expert_blocks=3, expert_layers_per_block=2,
                      expert_heads=4, time_code_dim=64, stage1_augment=False, lr_expert=1e-3, lr_other=1e-3,
                      subgoal_teacher_forcing=0.5, knowledge_insulation=False, sampling_noise_scale=0.0)
            # No knowledge insulation: it protects a pretrained VLM, and this one starts random, so under KI its
            # vision tower and layers would learn only from the primary image's distillation and subgoal losses
            # and the wrist camera would reach the expert through untrained weights.
            # Deterministic sampling: the grasp needs the chunk's mode, not a draw around it (pick-and-place pp_v4,
            # ROS-free, seeds 5000-5049 x 2 instructions: noise std 1 43/100, 0 60/100; 0.5 on 5000-5019 as 0).
        else:
            raise ValueError(f"unknown LaWAM preset {name!r}; known: 'paper', 'sim', 'tiny'")
        for key, value in overrides.items():
            if not hasattr(cfg, key):
                raise ValueError(f"unknown LaWAMConfig field {key!r}")
            setattr(cfg, key, value)
        cfg.validate()
        return cfg

    # ------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return int(self.dinov3["hidden_size"])

    @property
    def num_patches(self) -> int:
        side = self.image_size // int(self.dinov3["patch_size"])
        return side * side

    @property
    def vlm_hidden(self) -> int:
        return int(self.qwen3vl["text_config"]["hidden_size"])

    @property
    def expert_depth(self) -> int:
        return self.expert_blocks * self.expert_layers_per_block

    def layout(self, embodiment: str | None = None) -> ActionLayout:
        name = embodiment or self.default_embodiment
        if name not in self.embodiments:
            raise ValueError(f"unknown embodiment {name!r}; this checkpoint knows {sorted(self.embodiments)}")
        return ActionLayout.from_dict(self.embodiments[name])

    def cameras(self, embodiment: str | None = None) -> list:
        name = self.layout(embodiment).embodiment
        return list(self.camera_roles.get(name, ["primary"]))

    def net_action_dim(self, embodiment: str | None = None) -> int:
        return NET_ARM_DIM * len(self.layout(embodiment).arms)

    def trained_rates_hz(self, embodiment: str | None = None) -> list:
        """Control rates this checkpoint was trained at for `embodiment` (empty: not recorded)."""
        return [float(r) for r in self.control_rates_hz.get(self.layout(embodiment).embodiment, [])]

    def horizon_steps(self, control_hz: float) -> int:
        """H_b = round(T * f_b): number of action tokens of a branch at `control_hz`."""
        return max(1, int(round(self.horizon_s * control_hz)))

    def validate(self) -> None:
        if not (self.horizon_s > 0 and math.isfinite(self.horizon_s)):
            raise ValueError(f"horizon_s must be positive, got {self.horizon_s}")
        if isinstance(self.sampling_noise_scale, bool) or not (self.sampling_noise_scale >= 0
                                                                and math.isfinite(self.sampling_noise_scale)):
            raise ValueError(f"sampling_noise_scale must be a finite number >= 0, got {self.sampling_noise_scale!r}")
        if self.image_size % int(self.dinov3["patch_size"]):
            raise ValueError("image_size must be a multiple of the DINOv3 patch size")
        vis = self.qwen3vl["vision_config"]
        if self.image_size % (vis["patch_size"] * vis["spatial_merge_size"]):
            raise ValueError("image_size must be a multiple of the Qwen3-VL patch size x spatial merge size")
        if self.vlm_layers > self.qwen3vl["text_config"]["num_hidden_layers"]:
            raise ValueError("vlm_layers exceeds the Qwen3-VL text model's depth")
        if self.components not in ("all", "stage1"):
            raise ValueError(f"components must be 'all' or 'stage1', got {self.components!r}")
        if self.default_embodiment not in self.embodiments:
            raise ValueError(f"default_embodiment {self.default_embodiment!r} has no action layout")
        if self.expert_width % self.expert_heads or self.lawm_width % self.lawm_heads:
            raise ValueError("widths must be divisible by the number of heads")
        lo, hi = self.augment_crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment_crop_scale must satisfy 0 < lo <= hi <= 1, got {self.augment_crop_scale}")
        lo, hi = self.augment_crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"augment_crop_ratio must satisfy 0 < lo <= hi, got {self.augment_crop_ratio}")
        for name in ("augment_brightness", "augment_contrast", "augment_saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.time_encoding not in ("seconds", "index"):
            raise ValueError(f"time_encoding must be 'seconds' or 'index', got {self.time_encoding!r}")
        if not (self.time_index_step_s > 0 and math.isfinite(self.time_index_step_s)):
            raise ValueError(f"time_index_step_s must be positive, got {self.time_index_step_s}")
        if not 0.0 <= self.subgoal_teacher_forcing <= 1.0:
            raise ValueError(f"subgoal_teacher_forcing must be in [0, 1], got {self.subgoal_teacher_forcing}")
        if not (self.lambda_distill >= 0 and math.isfinite(self.lambda_distill)):
            raise ValueError(f"lambda_distill must be >= 0, got {self.lambda_distill}")
        if not 0 <= self.augment_hue <= 0.5:
            raise ValueError(f"augment_hue must be in [0, 0.5], got {self.augment_hue}")

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "LaWAMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LaWAMConfig fields {sorted(unknown)}")
        cfg = cls(**copy.deepcopy(d))
        cfg.validate()
        return cfg

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "LaWAMConfig":
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
        return cls.from_dict(json.loads(path.read_text()))
