#!/usr/bin/env python3
"""Regenerate docs/parameters.md from the parameter and settings declarations (lawam_policy/parameters.py).

    . tools/env.sh && python tools/gen_parameters.py          # write it
    python tools/gen_parameters.py --check                    # exit 1 if it is stale
"""
import argparse
import sys
from pathlib import Path

from lawam_policy.parameters import reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is stale")
    args = ap.parse_args()
    text = reference_markdown()
    if args.check:
        if not DOC.is_file() or DOC.read_text() != text:
            print(f"{DOC} is stale: run python tools/gen_parameters.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
