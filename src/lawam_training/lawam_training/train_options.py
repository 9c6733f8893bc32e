"""Training options (torch-free, so the finetune command's settings can take their defaults from here
without importing torch)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainOptions:
    steps: int = 1000
    batch_size: int = 8  # samples per micro-batch on one process
    grad_accum: int = 1
    lr: float | None = None  # None: the model's per-module rates (expert 1e-4, others 1e-5)
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio at the last step
    max_grad_norm: float | None = 1.0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or "fp32" / "bf16"
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # newest periodic checkpoints kept per stage (0: keep all)
    num_workers: int = 2  # DataLoader worker processes (video decoding)
    distributed: str = "auto"  # auto: FSDP for the paper preset, DDP otherwise (only when world_size > 1)
    progress: bool = True

    def validate(self):
        for name in ("steps", "batch_size", "grad_accum", "log_every", "val_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training option {name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.distributed not in ("auto", "ddp", "fsdp"):
            raise ValueError(f"distributed must be auto, ddp or fsdp, got {self.distributed!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
