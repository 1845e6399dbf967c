"""Every rate-limit counter: multi-unit, boundary, out-of-order and exact-timing tests.

Expected answers are worked out by hand in the comments from each algorithm's
documented rule (docs/limiters.md), not recorded from a run.
"""

from __future__ import annotations

import json
import math
import pickle
import random

import pytest

from simsub.policy.limiters.base import StateError
from simsub.policy.ratelimit import (ALGORITHMS, DecayingQuota, EximRate, FixedWindow, LeakyBucket, PostfwdRate,
                                     SlidingWindow, TokenBucket)


def run(counter, steps, key="k"):
    """steps: (t, units) pairs -> list of decisions."""
    return [counter.try_take(key, t, units) for t, units in steps]


# ------------------------------------------------------------------ multi-unit
# limit 5 per 60 s; 4 units at 0, 2 at 1, 1 at 2.
FOUR_TWO_ONE = [(0, 4), (1, 2), (2, 1)]


@pytest.mark.parametrize("counter, expected", [
    # 4 spent; 4 + 2 > 5 refused and spends nothing; 4 + 1 = 5 fits.
    (FixedWindow(5, 60), [True, False, True]),
    (SlidingWindow(5, 60), [True, False, True]),
    (PostfwdRate(5, 60), [True, False, True]),
    # 5 tokens, refill 1/12 per s: 1 left; at 1 s 1.083 < 2; at 2 s 1.167 >= 1.
    (TokenBucket(5, 60), [True, False, True]),
    # Level 4, leaks 1/12 per s: 3.917 + 2 > 5; at 2 s 3.833 + 1 <= 5.
    (LeakyBucket(5, 60), [True, False, True]),
    # Rate 4; at 1 s 2(1-e^-x)/x + 4e^-x = 5.92 >= 5 (leaky: not stored); at 2 s from 0: 4.85 < 5.
    (EximRate(5, 60), [True, False, True]),
    # policyd v2 checks the decayed count before adding: 4*(59/60) = 3.93 is not above 5, so the
    # 2 units pass (5.93); at 2 s 5.93*(59/60) = 5.83 > 5 refuses the single unit.
    (DecayingQuota(5, 60), [True, True, False]),
], ids=lambda v: getattr(v, "algorithm", ""))
def test_four_two_one(counter, expected):
    assert run(counter, FOUR_TWO_ONE) == expected


def test_the_issue_case_fixed_window_refused_request_spends_nothing():
    """FixedWindow(5, 60) taking 4, 2, then 1 units: allow, refuse, allow (a counter that
    spends refused units answers allow, refuse, refuse); then the window is exactly full."""
    c = FixedWindow(5, 60)
    assert run(c, [(0, 4), (10, 2), (20, 1), (30, 1)]) == [True, False, True, False]
    assert run(c, [(60, 5), (61, 1)]) == [True, False]


@pytest.mark.parametrize("cls", [FixedWindow, SlidingWindow, PostfwdRate, TokenBucket, LeakyBucket])
def test_units_exactly_filling_the_limit_pass_one_more_is_refused(cls):
    c = cls(5, 3600)
    assert run(c, [(0, 2), (0, 3), (0, 1)]) == [True, True, False]


@pytest.mark.parametrize("cls", [FixedWindow, SlidingWindow, TokenBucket, LeakyBucket])
def test_more_units_than_the_limit_are_refused_even_first(cls):
    c = cls(5, 60)
    assert run(c, [(0, 6), (0, 5)]) == [False, True]


def test_postfwd_stores_a_first_request_above_the_limit():
    """postfwd creates the counter with the request's count before comparing: a first ``rcpt``
    request with 6 recipients under max 5 is refused and fills the window."""
    c = PostfwdRate(5, 60)
    assert run(c, [(0, 6), (1, 1), (60, 1), (60.5, 1)]) == [False, False, False, True]


# ------------------------------------------------------------------ boundaries
def test_fixed_window_boundaries_are_exact_multiples_of_the_window():
    c = FixedWindow(1, 60)
    k = 10**6  # t = 6e7 is exact in binary
    assert run(c, [(k * 60 - 0.001, 1), (k * 60 - 1e-6, 1), (k * 60, 1), ((k + 1) * 60 - 1e-6, 1)]) == \
        [True, False, True, False]


def test_sliding_window_an_event_leaves_exactly_window_seconds_later():
    c = SlidingWindow(1, 60)
    assert run(c, [(0, 1), (59.999, 1), (60, 1), (119.999, 1), (120, 1)]) == [True, False, True, False, True]


def test_postfwd_window_starts_at_the_first_request_not_at_a_multiple():
    """First request at 50: the window is [50, 110].  A fixed window would reset at 60;
    postfwd still counts a request at exactly 110 and renews only after it."""
    c = PostfwdRate(2, 60)
    assert run(c, [(50, 1), (60, 1), (61, 1), (110, 1), (110.001, 1), (111, 1), (112, 1)]) == \
        [True, True, False, False, True, True, False]
    assert c.state()["keys"]["k"] == [2.0, 170.001]  # renewed at 110.001 for 60 s


def test_token_bucket_refills_exactly_at_the_rate():
    c = TokenBucket(2, 2)  # 1 token per second, burst 2
    assert run(c, [(0, 2), (0.75, 1), (1.0, 1), (1.5, 1), (2.0, 1), (10, 2), (10, 1)]) == \
        [True, False, True, False, True, True, False]


def test_leaky_bucket_drains_exactly_at_the_rate_and_burst_is_separate():
    c = LeakyBucket(1, 1, burst=4)  # leaks 1 per second, holds 4
    # 4 at once fill it; at 0.5 the level is 3.5 (+1 > 4); at 1.0 it is 3 (+1 = 4).
    assert run(c, [(0, 4), (0.5, 1), (1.0, 1), (5.0, 4), (5.0, 0.5)]) == [True, False, True, True, False]
    # at 5.0 the level 4 (from 1.0) has drained to 0 exactly; 4 fit, nothing more.


def test_quota_decays_linearly_and_is_gone_after_one_period():
    c = DecayingQuota(10, 60)
    assert run(c, [(0, 10)]) == [True]
    assert c.state()["keys"]["k"] == [10.0, 0]
    # At 30 s half the period has passed: 10 * (1 - 30/60) = 5, plus 1.
    assert run(c, [(30, 1)]) == [True]
    assert c.state()["keys"]["k"] == [6.0, 30]
    # Exactly one period after the last update the count is 0: (1 - 60/60) * 6.
    assert run(c, [(90, 3)]) == [True]
    assert c.state()["keys"]["k"] == [3.0, 90]


def test_quota_refuses_only_above_the_limit_so_a_burst_passes_limit_plus_one():
    c = DecayingQuota(3, 3600)
    assert run(c, [(0, 1)] * 6) == [True, True, True, True, False, False]


def test_exim_burst_at_one_instant_passes_limit_minus_one():
    """Exim: rate 1, 2, 3, ... for simultaneous events; at the limit counts as over."""
    assert run(EximRate(3, 3600), [(0, 1)] * 4) == [True, True, False, False]
    assert run(EximRate(3.5, 3600), [(0, 1)] * 4) == [True, True, True, False]


def test_exim_smoothing_formula_exact():
    """rate = (1 - a) * rate_prev + a * count * p / i with a = 1 - exp(-i/p) (the brief's
    form; Exim's acl.c writes the same with a = exp(-i/p))."""
    p = 3600.0
    c = EximRate(100, p)
    run(c, [(0, 1), (600, 1), (900, 2)])
    r = 1.0
    for i, count in ((600, 1), (900 - 600, 2)):
        a = 1 - math.exp(-i / p)
        r = max((1 - a) * r + a * count * p / i, count)
    assert c.rate("k") == pytest.approx(r, rel=1e-12)


def test_exim_rate_restarts_at_count_after_a_long_silence():
    c = EximRate(100, 60)
    run(c, [(0, 1), (1, 1), (2, 1)])
    assert c.rate("k") > 2
    run(c, [(10_000, 1)])
    assert c.rate("k") == 1.0


def test_exim_steady_sender_follows_the_closed_form_of_the_spec():
    """Exim's derivation (acl.c): after a first event (rate_0 = 1), N events every i seconds
    give rate_N = p/i + (rate_0 - p/i) * a^N with a = exp(-i/p), tending to p/i."""
    p, i, n = 3600.0, 10.0, 1999
    c = EximRate(1e9, p)
    run(c, [(i * k, 1) for k in range(n + 1)])
    assert c.rate("k") == pytest.approx(p / i + (1 - p / i) * math.exp(-i / p) ** n, rel=1e-9)


def test_exim_leaky_lets_a_retrying_sender_through_strict_does_not():
    """A sender retrying every minute for an hour at a limit of 3 per hour.  Both refuse
    from the same message on; strict stores the refused events, so the rate climbs towards
    60/h and nothing passes again; leaky stores only accepted ones, so the rate decays
    between them and a retry now and then passes."""
    steps = [(60.0 * n, 1) for n in range(61)]
    leaky = run(EximRate(3, 3600), steps)
    strict = run(EximRate(3, 3600, strict=True), steps)
    first = strict.index(False)
    assert leaky.index(False) == first and all(strict[:first])
    assert not any(strict[first:])
    assert sum(leaky[first:]) >= 2


# ------------------------------------------------------------------ out of order
def test_sliding_window_late_time_counts_at_the_latest_time():
    """The late time clamp: a unit taken at 30 after a request at 70 counts as taken at 70,
    so it leaves the window at 130, not at 90 (and the deque stays in time order)."""
    c = SlidingWindow(1, 60)
    # 0: taken; 70: 5 units refused (the unit at 0 has left, nothing is left in the window);
    # 30 (late): taken, at 70; 91: still in (31, 91]; 130: gone; 131: the unit at 130 is in.
    assert run(c, [(0, 1), (70, 5), (30, 1), (91, 1), (130, 1), (131, 1)]) == [True, False, True, False, True, False]


def test_fixed_window_late_time_counts_in_the_latest_window():
    c = FixedWindow(2, 3600)
    assert run(c, [(3500, 1), (3590, 1), (3601, 1), (3595, 1), (3602, 1)]) == [True, True, True, True, False]


def test_token_bucket_late_time_refills_nothing():
    c = TokenBucket(2, 2)  # 1 per second
    assert run(c, [(10, 1), (9, 1), (9.5, 1)]) == [True, True, False]
    assert run(c, [(11, 1)]) == [True]  # refilled from 10 (the latest), not from 9


def test_leaky_bucket_late_time_leaks_nothing():
    c = LeakyBucket(2, 2)
    assert run(c, [(10, 1), (9, 1), (9.5, 1)]) == [True, True, False]
    assert run(c, [(11, 1)]) == [True]


def test_quota_late_time_keeps_the_latest_update():
    c = DecayingQuota(10, 100)
    run(c, [(50, 4), (40, 2)])  # no time has passed for the late one: 4 + 2
    assert c.state()["keys"]["k"] == [6.0, 50]
    run(c, [(100, 0)])  # decays over 50 s from 50, not over 60 s from 40
    assert c.state()["keys"]["k"] == [3.0, 100]


def test_exim_late_time_adds_to_the_rate_without_decay():
    c = EximRate(100, 60)
    run(c, [(10, 1), (20, 1)])
    before = c.rate("k")
    run(c, [(15, 2)])
    assert c.rate("k") == before + 2
    assert c.state()["keys"]["k"][1] == 20


def test_postfwd_late_time_counts_in_the_current_window():
    c = PostfwdRate(2, 60)
    assert run(c, [(100, 1), (170, 1), (165, 1), (171, 1)]) == [True, True, True, False]


# ------------------------------------------------------------------ equivalences
def test_leaky_bucket_with_burst_equal_to_limit_is_the_token_bucket():
    rng = random.Random(7)
    for _ in range(50):
        leaky, token = LeakyBucket(4, 8), TokenBucket(4, 8)  # 0.5 per second: dyadic, no rounding
        t = 0.0
        for _ in range(60):
            t += rng.choice([0, 0.25, 0.5, 1, 2, 4, 16])
            units = rng.choice([1, 1, 1, 2, 3, 5])
            assert leaky.try_take("k", t, units) == token.try_take("k", t, units)


def test_keys_are_counted_separately_in_every_algorithm():
    for cls in ALGORITHMS.values():
        c = cls(2, 60)
        # At one instant every counter refuses the 4th unit of a key (Exim already the 2nd,
        # policyd's quota not before the 4th): the other key is untouched.
        assert not run(c, [(0, 1)] * 4, key="a")[-1], cls.algorithm
        assert c.try_take("b", 0), cls.algorithm


def test_a_per_call_limit_overrides_the_limit_for_that_key():
    for cls in (FixedWindow, SlidingWindow, PostfwdRate, TokenBucket, LeakyBucket):
        c = cls(2, 3600)
        assert run(c, [(0, 1)] * 3, key="user") == [True, True, False], cls.algorithm
        assert [c.try_take("owner", 0, 1, limit=5) for _ in range(6)] == [True] * 5 + [False], cls.algorithm
        assert c.limit_of("owner") == 5 and c.limit_of("user") == 2


# ------------------------------------------------------------------ snapshots and expiry
def random_steps(seed, n=300):
    rng = random.Random(seed)
    t, steps = 0.0, []
    for _ in range(n):
        t += rng.choice([0.0, 0.5, 3.0, 17.0, 45.0, 130.0])
        steps.append((rng.choice("abcde"), t, rng.choice([1, 1, 2, 3])))
    return steps


def make(name, limit=5.0, window=60.0):
    cls = ALGORITHMS[name]
    if name == "exim":
        return cls(limit, window, strict=True)
    if name == "leaky_bucket":
        return cls(limit, window, burst=limit + 2)
    return cls(limit, window)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_state_round_trips_through_json_and_pickle(name):
    steps = random_steps(1)
    a = make(name)
    for key, t, units in steps[:150]:
        a.try_take(key, t, units, limit=9.0 if key == "e" else None)
    b, c = make(name), pickle.loads(pickle.dumps(a))
    b.load_state(json.loads(json.dumps(a.state())))
    for key, t, units in steps[150:]:
        limit = 9.0 if key == "e" else None
        expected = a.try_take(key, t, units, limit)
        assert b.try_take(key, t, units, limit) == expected
        assert c.try_take(key, t, units, limit) == expected
    assert b.state() == a.state()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_snapshot_of_another_counter_is_refused(name):
    other = "fixed" if name != "fixed" else "sliding"
    with pytest.raises(StateError, match="algorithm"):
        make(name).load_state(make(other).state())
    with pytest.raises(StateError, match="parameters"):
        make(name).load_state(make(name, limit=6.0).state())


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_expire_changes_no_decision(name):
    """Expiring keys at each step's time (never later than the next request) gives the
    decisions of a counter that keeps everything."""
    kept, pruned = make(name), make(name)
    dropped = 0
    for key, t, units in random_steps(2, 600):
        dropped += pruned.expire(t)
        assert pruned.try_take(key, t, units) == kept.try_take(key, t, units), (key, t)
    assert dropped > 0  # the test exercised expiry
    assert len(pruned) <= len(kept)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_expire_forgets_every_key_after_a_long_silence_and_none_too_early(name):
    c = make(name)
    for i in range(100):
        c.try_take(f"user{i}", 0.0, 1)
    assert c.expire(0.0) == 0 and len(c) == 100  # just used: all still matter
    assert c.expire(3600.0) == 100 and len(c) == 0
    assert c.state()["keys"] == {}


def test_the_comparison_table_in_docs_matches_the_code():
    """docs/limiters.md shows one stream through every algorithm; recompute it."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "limiters.md").read_text(encoding="utf-8")
    table = text[text.index("| t (s) |"):].split("\n\n", 1)[0].splitlines()
    times = [float(v) for v in table[0].strip("|").split("|")[1:]]
    checked = 0
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].split("`")[1]
        counter = EximRate(3, 60, strict=True) if "strict" in cells[0] else ALGORITHMS[name](3, 60)
        assert [counter.try_take("k", t) for t in times] == [c == "✓" for c in cells[1:]], cells[0]
        checked += 1
    assert checked == 8
