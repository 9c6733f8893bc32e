"""Fixed evaluation seeds: the sim counterpart of the paper's fixed initial configurations.

Every scene draws its randomised initial configuration from ``numpy.random.default_rng(seed)``, so a seed
reproduces one episode start exactly. ``EVAL_SEEDS`` is the fixed tuple used by evaluations and by a twin's
Reset service when it is called with ``seed < 0`` (next evaluation seed, wrapping around). 30 seeds match the
paper's 30-trial protocol.
"""
EVAL_SEEDS: tuple[int, ...] = tuple(1000 + 7 * i for i in range(30))


class EvalSeedCycler:
    """Hands out EVAL_SEEDS in order, wrapping around (used for ``Reset(seed<0)``)."""

    def __init__(self, seeds: tuple[int, ...] = EVAL_SEEDS):
        self._seeds = tuple(seeds)
        self._next = 0

    def next(self) -> int:
        seed = self._seeds[self._next % len(self._seeds)]
        self._next += 1
        return seed
