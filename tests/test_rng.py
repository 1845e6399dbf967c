"""random01 is numpy's ``random()``, draw for draw, on streams that mix draw kinds."""

from __future__ import annotations

import numpy as np

from simsub.workload.rng import Streams, random01


def test_random01_matches_random_with_other_draws_between():
    """Two copies of one stream: one draws with ``random()``, the other with random01;
    between them both make the small-range integer draws (which use PCG64's buffered
    32-bit half), multinomials and lognormals a bot's stream makes.  Every value and the
    final state agree, so random01 neither skips nor reuses any of the generator's output."""
    for seed in (1, 20120515):
        a, b = Streams(seed).get("bot", "botnet", 3, 0), Streams(seed).get("bot", "botnet", 3, 0)
        for i in range(3000):
            kind = i % 5
            if kind in (0, 3):
                x, y = a.random(), random01(b)
                assert x == y and type(y) is float
            elif kind == 1:
                assert a.integers(30, 71) == b.integers(30, 71)
            elif kind == 2:
                assert a.multinomial(50, [0.25, 0.15, 0.6]).tolist() == b.multinomial(50, [0.25, 0.15, 0.6]).tolist()
            else:
                assert a.lognormal(1.0, 0.15) == b.lognormal(1.0, 0.15)
        assert a.bit_generator.state == b.bit_generator.state


def test_random01_of_another_bit_generator_is_its_random():
    a, b = np.random.Generator(np.random.MT19937(5)), np.random.Generator(np.random.MT19937(5))
    assert [a.random() for _ in range(50)] == [random01(b) for _ in range(50)]
