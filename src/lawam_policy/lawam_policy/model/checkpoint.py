"""Checkpoint I/O of LaWAMPolicy: one writer and one reader of a checkpoint directory.

A checkpoint is `lawam_config.json` (LaWAMConfig with the layouts, statistics and camera roles),
`model.safetensors` (the state dict) and, for a stage-2 policy, the tokenizer files. Files get the usual
umask-derived mode (safetensors alone would leave the weights -rw-------).

Loading builds the policy's parameters on the meta device (no random init, no fp32 copy) and assigns the
stored tensors in their stored dtype, so peak memory is about one copy of the weights. float16 is the one
storage-only dtype (save_pretrained(dtype=torch.float16) halves a shipped file of a float32 model): it loads
as float32.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .config import LaWAMConfig
from .tokenizer import load_tokenizer

WEIGHTS_NAME = "model.safetensors"


def save_checkpoint(policy, directory: str | Path, dtype: torch.dtype | None = None,
                    state_dict: dict | None = None) -> Path:
    """Write `policy`'s config, weights and tokenizer into `directory` (created if needed) and return it.

    dtype: cast floating tensors to it (e.g. torch.float16 to halve a shipped file); loading keeps the stored
    dtype unless asked otherwise. state_dict: the weights to write instead of policy.state_dict() (an FSDP
    trainer's gathered full state dict). The snapshot paths are cleared: the weights now live here."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = LaWAMConfig.from_dict(policy.config.to_dict())
    cfg.dinov3_path = cfg.qwen3vl_path = None
    cfg.tokenizer = "checkpoint" if policy.vlm is not None else "builtin"
    cfg.save(directory)
    state = policy.state_dict() if state_dict is None else state_dict
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in state.items()}
    weights = directory / WEIGHTS_NAME
    # safetensors writes 0600; a lab shares checkpoints. touch() gives the umask-derived mode (reading the umask
    # itself would change it for a moment for every thread of the process).
    weights.touch()
    mode = weights.stat().st_mode & 0o777
    save_file(state, str(weights), metadata={"format": "pt"})
    os.chmod(weights, mode)
    if policy.vlm is not None:
        policy.vlm.tokenizer.save_pretrained(str(directory))
    return directory


@contextlib.contextmanager
def parameters_on_meta():
    """While building a module, every parameter is moved to the meta device as it is registered, so the
    initialisers that follow (nn.Linear's reset_parameters, ...) touch no memory. Buffers stay real: the
    non-persistent ones (rotary frequencies, ...) are not in a checkpoint and must keep their computed values.
    It patches nn.Module for the duration: no other thread may build modules meanwhile."""
    register = nn.Module.register_parameter

    def to_meta(module, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = to_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def load_checkpoint(policy_cls, directory: str | Path, components: str | None = None, device=None, dtype=None,
                    qwen3vl_path: str | None = None):
    """Load a checkpoint directory into a `policy_cls` (LaWAMPolicy) in eval mode.

    components: None keeps the checkpoint's; "all" turns a stage-1 checkpoint into a stage-2 policy (encoder,
    IDM, LaWM and auxiliary heads loaded; the VLM from `qwen3vl_path`, or random). device / dtype: where and in
    which dtype to put the loaded policy (default: CPU, the stored dtype; float16 files load as float32).
    Raises FileNotFoundError without a config, ValueError for a config or state dict that does not fit."""
    directory = Path(directory)
    cfg = LaWAMConfig.load(directory)
    stage1_ckpt = cfg.components == "stage1"
    if components is not None:
        cfg.components = components
    cfg.qwen3vl_path = qwen3vl_path
    cfg.validate()
    tokenizer = None
    if cfg.components == "all" and (directory / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(directory)
    state = load_file(str(directory / WEIGHTS_NAME))
    if stage1_ckpt and cfg.components == "all":
        # The VLM and expert are not in the file: they need real (random or snapshot) weights.
        policy = policy_cls(cfg, tokenizer=tokenizer)
        missing, unexpected = policy.load_state_dict(state, strict=False)
        bad = [k for k in missing if not k.startswith(("vlm.", "expert."))]
        if bad or unexpected:
            raise ValueError(f"stage-1 checkpoint does not fit: missing {bad[:3]}, unexpected {unexpected[:3]}")
    else:
        with parameters_on_meta():
            policy = policy_cls(cfg, tokenizer=tokenizer)
        _assign(policy, state)
    policy.config.tokenizer = "checkpoint" if tokenizer is not None else "builtin"
    policy.eval()
    if dtype is None and any(t.dtype == torch.float16 for t in state.values()):
        dtype = torch.float32
    if device is not None or dtype is not None:
        policy.to(device=device, dtype=dtype)
    return policy


def _assign(policy: nn.Module, state: dict) -> None:
    """Strict load that takes the stored tensors themselves (no copy, stored dtype) in place of the meta
    parameters. (No parameter is shared between modules: safetensors refuses to write shared tensors.)"""
    try:
        policy.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint weights do not fit this config: {err}") from None
    left = [n for n, t in list(policy.named_parameters()) + list(policy.named_buffers()) if t.is_meta]
    if left:
        raise ValueError(f"checkpoint leaves {len(left)} tensors unset, e.g. {left[:3]}")
