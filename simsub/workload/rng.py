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


#: 2**-53: a PCG64 draw's top 53 bits times this is numpy's ``random()`` double.
_DOUBLE_SCALE = 1.0 / 9007199254740992.0


def random01(rng: np.random.Generator) -> float:
    """``rng.random()``: the same double in [0, 1), and the stream left in the same state.

    numpy's PCG64 makes a double from one 64-bit output, ``(next64 >> 11) * 2**-53``,
    and ``random_raw()`` returns that very output, so for the PCG64 streams
    :class:`Streams` makes this is the same draw without ``random()``'s argument
    handling (about half its cost per scalar call).  Neither touches the 32-bit
    half PCG64 keeps for small-range integer draws, so draws of other kinds on the
    same stream are unchanged.  Other bit generators go through ``random()``.
    """
    bits = rng.bit_generator
    if type(bits) is not np.random.PCG64:
        return float(rng.random())
    return (bits.random_raw() >> 11) * _DOUBLE_SCALE
