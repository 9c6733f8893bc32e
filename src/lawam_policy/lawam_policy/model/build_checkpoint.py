"""`lawam-build-checkpoint`: assemble an untrained LaWAM checkpoint from local pretrained snapshots.

    lawam-build-checkpoint --dinov3 DIR --qwen3vl DIR --output DIR [--preset paper] [--dtype bf16]

DINOv3 and Qwen3-VL come from local directories (never downloaded); Qwen3-VL's text model is cut to the
preset's first `vlm_layers` layers (28 -> 16 for the 2B) and its tokenizer is kept. The IDM encoder, LaWM,
auxiliary heads, queries and the action expert are freshly initialised.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def build(dinov3: str, qwen3vl: str, output: str, preset: str = "paper", dtype: str = "fp32", seed: int = 0):
    from .config import LaWAMConfig
    from .policy import LaWAMPolicy
    from .vlm_prior import read_qwen3vl_snapshot_config

    for what, path in (("DINOv3", dinov3), ("Qwen3-VL", qwen3vl)):
        if not Path(path, "config.json").is_file():
            raise FileNotFoundError(f"{what} snapshot {path} has no config.json")
    cfg = LaWAMConfig.from_preset(preset)
    # The snapshots define the backbone sizes; the preset defines everything LaWAM adds.
    dino = json.loads(Path(dinov3, "config.json").read_text())
    for key in cfg.dinov3:
        if key in dino:
            cfg.dinov3[key] = dino[key]
    cfg.qwen3vl = read_qwen3vl_snapshot_config(qwen3vl)
    cfg.vlm_layers = min(cfg.vlm_layers, cfg.qwen3vl["text_config"]["num_hidden_layers"])
    cfg.dinov3_path, cfg.qwen3vl_path = str(dinov3), str(qwen3vl)
    cfg.validate()
    torch.manual_seed(seed)
    policy = LaWAMPolicy(cfg)
    if dtype == "bf16":
        policy = policy.to(torch.bfloat16)
    policy.save_pretrained(output)
    return policy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lawam-build-checkpoint", description=__doc__.splitlines()[0])
    ap.add_argument("--dinov3", required=True, help="local DINOv3 ViT-B/16 snapshot directory")
    ap.add_argument("--qwen3vl", required=True, help="local Qwen3-VL-2B snapshot directory (weights + tokenizer)")
    ap.add_argument("--output", required=True, help="checkpoint directory to write")
    ap.add_argument("--preset", default="paper", choices=["paper", "tiny"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        policy = build(args.dinov3, args.qwen3vl, args.output, args.preset, args.dtype, args.seed)
    except (FileNotFoundError, ValueError) as e:  # bad input: one line, exit 2, like every lawam command
        print(f"lawam-build-checkpoint: error: {e}", file=sys.stderr)
        return 2
    report = policy.parameter_report()
    print(f"wrote {args.output}: " + ", ".join(f"{k}={v / 1e6:.1f}M" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
