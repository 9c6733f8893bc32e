"""Weight averaging of LaWAM checkpoints fine-tuned from one start ("model soup", Wortsman et al., ICML 2022).

Runs that start from the same weights and differ in seed or loss weights stay in one basin of the loss, so
the mean of their weights is a model too, and often a better one than each (the uniform soup). This is how the
shipped pick-and-place checkpoint is made from `lawam-sim-train` runs (README, "Training a policy in the twin").

The checkpoints must agree on everything but the weights: the same config (layouts, normalisation statistics,
camera roles, rates), hence the same tensor names and shapes; integer buffers must be equal. Averaging is in
float32; the result is stored in the first checkpoint's floating dtype (float16 for the shipped ones).

    lawam-average-checkpoints --output DIR CKPT CKPT [CKPT ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from lawam_policy.model import LaWAMPolicy

from .train import save_policy, write_atomic_dir


def _first_difference(a, b, path: str = "") -> str | None:
    """The first key path where two config dicts differ, None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}{key}"
            found = _first_difference(a[key], b[key], f"{path}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else path.rstrip(".")


def average_checkpoints(sources: list[Path], output: Path) -> Path:
    """Write the uniform average of the checkpoints `sources` (>= 2 directories) to `output` and return it.

    Raises ValueError if fewer than two are given, if their configs differ (naming the first differing key),
    or if an integer tensor differs; FileExistsError if `output` exists (never
    overwritten); FileNotFoundError for a directory that is not a checkpoint."""
    sources = [Path(s) for s in sources]
    output = Path(output)
    if len(sources) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(sources)}")
    if output.exists():
        raise FileExistsError(f"{output} exists: give a new --output (nothing is overwritten)")
    policies = [LaWAMPolicy.from_pretrained(src) for src in sources]  # float16 files load as float32
    first = policies[0]
    reference = first.config.to_dict()
    for src, policy in zip(sources[1:], policies[1:]):
        key = _first_difference(reference, policy.config.to_dict())
        if key is not None:
            raise ValueError(f"{src} and {sources[0]} differ in their config at '{key}': only checkpoints that "
                             f"differ in their weights alone can be averaged")
    states = [p.state_dict() for p in policies]  # one config: the same names and shapes
    averaged = {}
    for name, tensor in states[0].items():
        others = [s[name] for s in states[1:]]
        if tensor.is_floating_point():
            averaged[name] = torch.stack([tensor.float()] + [o.float() for o in others]).mean(0)
        elif all(torch.equal(tensor, o) for o in others):
            averaged[name] = tensor
        else:
            raise ValueError(f"integer tensor '{name}' differs between the checkpoints: cannot be averaged")
    with safe_open(str(sources[0] / "model.safetensors"), "pt") as f:  # the stored dtype, before loading's cast
        stored = {f.get_slice(k).get_dtype() for k in f.keys()}
    dtype = torch.float16 if "F16" in stored else torch.bfloat16 if "BF16" in stored else None
    return write_atomic_dir(output, lambda d: save_policy(first, d, state_dict=averaged, dtype=dtype))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lawam-average-checkpoints", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint directories (at least two)")
    ap.add_argument("--output", type=Path, required=True, help="new checkpoint directory (must not exist)")
    args = ap.parse_args(argv)
    try:
        out = average_checkpoints(args.checkpoints, args.output)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"lawam-average-checkpoints: error: {err}", file=sys.stderr)
        return 2
    print(f"lawam-average-checkpoints: the mean of {len(args.checkpoints)} checkpoints written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
