#!/usr/bin/env python3
"""Test-support executable: the product policy node with a deterministic fake model.

    python test/support/fake_policy_node.py --ros-args --params-file config/policy.yaml -p task:=...

Hands a FakePredictor to lawam_policy's PolicyNode through its constructor (the only way the product node
takes another model; it has no switch for this). The predictor draws slow circles around `fake_center` (one
xyz per arm; default the twins' home poses from the embodiment registry), so a bridge accepts its chunks.
Runs through the workspace's shared node main. For tests and benchmarks; never installed.
"""
from __future__ import annotations

import sys

import numpy as np
from fake_predictor import FakePredictor

from lawam_policy.embodiments import EMBODIMENTS
from lawam_policy.nodes.main import run
from lawam_policy.nodes.policy_node import PolicyNode


class FakePolicyNode(PolicyNode):
    def __init__(self, **kwargs):
        fake = FakePredictor(clock=lambda: self.now_s())
        super().__init__(predictor=fake, **kwargs)
        # Nothing calls the predictor before the node spins (no frames and no task arrive before), so it can be
        # aimed at the embodiment's home poses (base frame; orientations x, y, z, w) now that it is known.
        home = EMBODIMENTS.get(self.embodiment, EMBODIMENTS["franka_panda"])
        flat = self.declare_parameter("fake_center", [v for c in home.home_positions for v in c]).value
        fake.center = np.reshape(flat, (-1, 3))
        fake.orientation = np.array(home.home_quats)
        fake.embodiment = self.embodiment
        self.model_id = "injected:fake"


def main(args=None) -> int:
    return run(FakePolicyNode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
