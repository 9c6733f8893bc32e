#!/usr/bin/env python3
"""Test-support executable: the product policy node with a deterministic fake model.

    python test/support/fake_policy_node.py --ros-args --params-file config/policy.yaml -p task:=...

Subclasses lawam_policy's PolicyNode and overrides only `load_predictor` (the product node has no switch
for this): FakePredictor draws slow circles around `fake_center` (one xyz per arm; default the twins' home
poses), so a bridge accepts its chunks. Runs through the workspace's shared node main. For tests and
benchmarks; never installed.
"""
from __future__ import annotations

import sys

import numpy as np

from lawam_policy.nodes.main import run
from lawam_policy.nodes.policy_node import PolicyNode
from lawam_policy.runtime.fake_predictor import FakePredictor

# Home EEF poses of the MuJoCo twins (base frame) and their orientations (x, y, z, w).
FAKE_HOMES = {
    "franka_panda": ([[0.5, 0.0, 0.4]], [[1.0, 0.0, 0.0, 0.0]]),
    "quanta_x1": ([[-0.18, 0.0, 0.3], [0.17, 0.0, 0.3]], [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]),
}


class FakePolicyNode(PolicyNode):
    def load_predictor(self):
        centers, quats = FAKE_HOMES.get(self.embodiment, FAKE_HOMES["franka_panda"])
        flat = self.declare_parameter("fake_center", [v for c in centers for v in c]).value
        self.model_id = "injected:fake"
        return FakePredictor(center=np.reshape(flat, (-1, 3)), orientation=np.array(quats), clock=self.now_s,
                             embodiment=self.embodiment)


def main(args=None) -> int:
    return run(FakePolicyNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
