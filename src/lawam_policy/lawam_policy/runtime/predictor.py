"""The predictor interface the runtime relies on: what InferenceEngine and the policy node call on a model.

LaWAMPolicy (lawam_policy.model) implements it; so can any stand-in (a scripted predictor in tests and
bring-up). Declared here so the runtime needs neither torch nor the model to type against it.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


class ChunkPrediction(Protocol):
    """One predicted action chunk. `timestamps` (H,) seconds from the observation's stamp (k / control_hz);
    `actions` (H, 8*arms) wire format per arm: x, y, z (m, base frame), qx, qy, qz, qw, gripper opening in
    [0, 1]. A prediction may also carry `subgoal` and `current_features` ((N, C) DINOv3 patch features, for the
    subgoal heatmap); the node draws one only when both are there."""
    timestamps: np.ndarray
    actions: np.ndarray


@runtime_checkable
class Predictor(Protocol):
    """Anything with LaWAMPolicy.predict_chunk's call. It may also have a `config` (a LaWAMConfig) that the
    node checks the embodiment, cameras and control rate against; a predictor without one is taken as is."""

    def predict_chunk(self, images: Sequence[np.ndarray], instruction: str, control_hz: float,
                      horizon_s: float | None = None, embodiment: str | None = None, seed: int | None = None,
                      prev_actions: np.ndarray | None = None,
                      prev_timestamps: np.ndarray | None = None) -> ChunkPrediction:
        """images: HxWx3 uint8 RGB, primary camera first; instruction: the task; control_hz: the chunk's
        action rate (Hz); horizon_s: None or the model's horizon (s); embodiment: an action layout name;
        seed: for a reproducible sample; prev_actions (K, 8*arms) at prev_timestamps (K,) s on this chunk's
        time line: the previous chunk's remaining actions to continue (inpainting). Raises ValueError for
        bad input."""
        ...
