"""Headless RGB cameras (``MUJOCO_GL=egl`` with Mesa on the CPU).

Shadows, reflections and multisampling are switched off: on the CPU they dominate the cost of a 224x224
frame (~220 ms with shadows and reflections, ~30 ms without; 4x MSAA alone costs ~3x). The scenes set
``offsamples="0"`` in their MJCF for the same reason. One ``mujoco.Renderer`` per distinct image size; renderers are created lazily so
a scene that is never rendered needs no GL context.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


class CameraRig:
    def __init__(self, model: mujoco.MjModel, width: int = 224, height: int = 224):
        if width <= 0 or height <= 0:
            raise ValueError(f"bad image size {width}x{height}")
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model, self.width, self.height = model, width, height
        self._renderer: mujoco.Renderer | None = None

    def _r(self) -> mujoco.Renderer:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        return self._renderer

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """(height, width, 3) uint8 RGB image from the named camera."""
        if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise KeyError(f"no camera {camera!r} in the model")
        r = self._r()
        r.update_scene(data, camera)
        return r.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
