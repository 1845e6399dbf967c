"""Named, independent random streams derived from one root seed.

Every purpose (a population's arrivals, one bot's choices, …) gets its own
``numpy.random.Generator`` whose seed is derived from the root seed and the
purpose's *name*, never from the order in which streams are created.  So a
policy change that makes a bot send fewer sessions does not shift anybody
else's draws: policies are compared with common random numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_key(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """``streams.get("arrivals", "subscribers")`` → the same generator state for
    the same root seed and names, in any process."""

    def __init__(self, seed: int):
        self.seed = seed

    def get(self, *names: object) -> np.random.Generator:
        key = _name_key("/".join(str(n) for n in names))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=key)))
