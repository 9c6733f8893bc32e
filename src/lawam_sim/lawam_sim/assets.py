"""Locate robot models shipped by installed pip packages and load them into MuJoCo's virtual file system.

The robot XML and meshes stay in the installed package (gym-hil for the Panda, gym-aloha for the ViperX
pair); we never copy them into this tree. ``importlib.util.find_spec`` finds the package directory without
importing it (both packages import gymnasium at import time, which we do not need).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path


class MissingAssetPackage(RuntimeError):
    pass


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetPackage(
            f"the robot model package {package!r} is not installed; install it with "
            f"`pip install --no-deps -c constraints.txt {package.replace('_', '-')}` (see requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=None)
def asset_files(package: str, subdir: str = "assets") -> dict[str, bytes]:
    """All files under ``<package>/<subdir>`` keyed by their relative path (MuJoCo ``assets=`` mapping)."""
    root = package_dir(package) / subdir
    if not root.is_dir():
        raise MissingAssetPackage(f"{root} does not exist: unexpected layout of the {package!r} package")
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".xml", ".stl", ".obj", ".png")}
