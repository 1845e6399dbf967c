"""calibrate's fitted values against synthetic logs with known parameters.

Tolerances are derived, not tuned: Z = 3.29 is the two-sided 99.9 % normal
quantile, so each statistical check fails by chance about once in a thousand
runs of a fresh seed (the seeds are fixed, so the suite is deterministic).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simsub import ScenarioError
from simsub.maillog.calibrate import CalibrateOptions, calibrate
from simsub.maillog.fit import empirical_counts, hour_exposure, volume_classes

from .maillog_frames import MYNETWORKS, Session, botnet_sessions, client, parsed_log, user_sessions

Z = 3.29
T0 = 1_336_953_600.0  # 2012-05-14 00:00 UTC, a midnight
OPTIONS = CalibrateOptions(mynetworks=MYNETWORKS, home_domain="jp")
SHARES = {"own": 0.7, "home": 0.15, "foreign": 0.05, "unknown": 0.10}


def _accounts(rng, n, per_day, shares=SHARES, first=0, prefix="user"):
    origins = rng.choice(list(shares), p=list(shares.values()), size=n)
    return {f"{prefix}{first + i}": (str(o), first + i, per_day) for i, o in enumerate(origins)}


def _users(calibration):
    return [p.values for p in calibration.populations if p.values["kind"] == "user"]


def _simulated_volume(population, horizon_s):
    """Expected messages of a population over the horizon, computed the way the model draws them."""
    weights = np.array(population["diurnal"], dtype=float)
    weights = weights * 24 / weights.sum()
    exposure = float(np.dot(weights, hour_exposure(0.0, horizon_s)))
    return population["count"] * population["messages_per_day"] / 86400 * exposure


def test_origin_shares_within_a_binomial_bound():
    rng = np.random.default_rng(11)
    accounts = _accounts(rng, 3000, 6.0)
    cal = calibrate(parsed_log(user_sessions(rng, accounts)), OPTIONS)
    (users,) = _users(cal)
    seen = {a for a in cal.traffic.messages["account"]}
    n = len(seen)
    for origin, p in SHARES.items():
        realised = sum(accounts[a][0] == origin for a in seen) / n
        assert users["origins"][origin] == pytest.approx(realised, abs=1e-4)  # each account counted once
        assert abs(users["origins"][origin] - p) <= Z * math.sqrt(p * (1 - p) / n)
    assert sum(users["origins"].values()) == pytest.approx(1.0, abs=1e-12)


def test_one_poisson_population_is_one_class_and_its_unseen_accounts_are_estimated():
    rng = np.random.default_rng(12)
    n, rate = 2000, 2.0  # P(0) = e^-2 = 13.5 %: many accounts never appear
    cal = calibrate(parsed_log(user_sessions(rng, _accounts(rng, n, rate))), OPTIONS)
    (users,) = _users(cal)
    seen = cal.traffic.messages["account"].nunique()
    assert seen < n - 200
    # N̂ = seen / (1 - e^-λ̂): binomial noise of `seen` plus the delta-method term of λ̂ (SE sqrt(λ/N)).
    p0 = math.exp(-rate)
    sd = math.sqrt(n * p0 * (1 - p0)) / (1 - p0) + seen * p0 / (1 - p0) ** 2 * math.sqrt(rate / n)
    assert abs(users["count"] - n) <= Z * sd
    assert abs(users["messages_per_day"] - rate) <= Z * math.sqrt(rate / n) + 1e-3


def test_volume_classes_recover_light_and_heavy_senders():
    rng = np.random.default_rng(13)
    days = 2
    light = _accounts(rng, 1500, 2.0)
    heavy = _accounts(rng, 60, 150.0, first=1500, prefix="list")
    sessions = user_sessions(rng, {**light, **heavy}, days=days)
    cal = calibrate(parsed_log(sessions), OPTIONS)
    low, high = _users(cal)
    assert (low["name"], high["name"]) == ("light", "heavy")
    assert high["count"] == 60  # 150 a day is never confused with 2 a day: every heavy account is assigned
    assert abs(high["messages_per_day"] - 150.0) <= Z * math.sqrt(150.0 * days / 60) / days
    p0 = math.exp(-2.0 * days)
    sd = math.sqrt(1500 * p0 * (1 - p0)) / (1 - p0) + 1500 * p0 / (1 - p0) ** 2 * math.sqrt(2.0 * days / 1500)
    assert abs(low["count"] - 1500) <= Z * sd
    assert abs(low["messages_per_day"] - 2.0) <= Z * math.sqrt(2.0 * days / 1500) / days + 1e-3
    # The volume is the log's: the classes' expected messages add up to the logged ones.
    total = sum(_simulated_volume(p, cal.traffic.horizon_s) for p in (low, high))
    assert total == pytest.approx(cal.legit_messages, rel=1e-5)


def test_volume_is_preserved_over_a_partial_day_with_a_diurnal_profile():
    rng = np.random.default_rng(14)
    diurnal = [0.2] * 7 + [1.5] * 10 + [1.0] * 7
    sessions = user_sessions(rng, _accounts(rng, 800, 5.0), days=2, diurnal=diurnal)
    # keep 10:00 on day 0 to 16:00 on day 1: a 30 h log starting mid-morning
    sessions = [s for s in sessions if T0 + 10 * 3600 <= s.connect_s < T0 + 40 * 3600]
    cal = calibrate(parsed_log(sessions), OPTIONS)
    assert cal.traffic.horizon_s == 30 * 3600
    assert cal.traffic.start_hour == 10
    (users,) = _users(cal)
    # index 0 of the profile is 10:00, the log's first hour
    assert users["diurnal"][0] == cal.diurnal[0]
    weights = np.array(diurnal) / np.mean(diurnal)
    rotated = np.roll(weights, -10)
    counts = np.bincount(((cal.traffic.messages["local_s"] - T0) // 3600 % 24).astype(int), minlength=24)
    total = counts.sum()
    for fitted, true, count in zip(users["diurnal"], rotated, np.roll(counts, -10)):
        # relative noise of one hour's Poisson count and of the mean it is divided by
        assert abs(fitted - true) <= Z * true * math.sqrt(1 / count + 1 / total) + 5e-4
    assert _simulated_volume(users, cal.traffic.horizon_s) == pytest.approx(cal.legit_messages, rel=1e-5)


def test_diurnal_weights_are_hourly_counts_over_their_mean_on_a_whole_day():
    rng = np.random.default_rng(15)
    diurnal = [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 0.8, 1.0, 1.2, 1.2, 1.2,
               1.3, 1.2, 1.2, 1.2, 1.2, 1.3, 1.4, 1.6, 1.8, 1.8, 1.4, 0.8]
    cal = calibrate(parsed_log(user_sessions(rng, _accounts(rng, 2000, 4.0), diurnal=diurnal)), OPTIONS)
    counts = np.bincount(((cal.traffic.messages["local_s"] - T0) // 3600).astype(int), minlength=24)
    assert cal.diurnal == [round(c / counts.mean(), 3) for c in counts]
    assert np.mean(cal.diurnal) == pytest.approx(1.0, abs=1e-3)


def test_recipients_are_the_logged_empirical_distribution():
    rng = np.random.default_rng(16)
    cal = calibrate(parsed_log(user_sessions(rng, _accounts(rng, 1500, 4.0), recipients_mean=1.5)), OPTIONS)
    (users,) = _users(cal)
    logged = cal.traffic.messages["recipients"].to_numpy()
    points = users["recipients"]["points"]
    for x, f in points:
        assert f == pytest.approx(np.mean(logged <= x), abs=1e-6)
    mean = points[0][0] * points[0][1] + sum((f1 - f0) * x1 for (_, f0), (x1, f1) in zip(points, points[1:]))
    assert abs(mean - 1.5) <= Z * math.sqrt(0.5 * 1.5) / math.sqrt(len(logged))  # geometric: var (1-p)/p² = 0.75


def test_long_tailed_recipients_are_grouped_keeping_the_mean():
    rng = np.random.default_rng(17)
    values = np.round(rng.lognormal(1.0, 1.5, 20000)).astype(int) + 1
    points = empirical_counts(values, max_points=40)
    assert len(points) <= 40
    mean = points[0][0] * points[0][1] + sum((f1 - f0) * x1 for (_, f0), (x1, f1) in zip(points, points[1:]))
    # a bin keeps its mean but rounded: each grouped value moves the mean by at most 0.5 / n
    assert abs(mean - values.mean()) <= 0.5
    assert points[-1][1] == 1.0 and all(b[0] > a[0] and b[1] > a[1] for a, b in zip(points, points[1:]))


def test_volume_classes_refuse_empty_input():
    with pytest.raises(ValueError):
        volume_classes([])


def test_round_trips_from_sub_second_durations():
    rng = np.random.default_rng(18)
    rtts = {}
    accounts = _accounts(rng, 400, 4.0, shares={"foreign": 1.0})
    sessions = user_sessions(rng, accounts)
    for s in sessions:  # each client has its own round trip, uniform on [0.1, 0.3]
        rtt = rtts.setdefault(s.sasl_username, float(rng.uniform(0.1, 0.3)))
        n = s.messages[0]
        s.duration = (6 + n) * rtt + (7 + n) * 0.002
    cal = calibrate(parsed_log(sessions), OPTIONS)
    rtt = cal.origins["foreign"].values["rtt"]
    assert rtt["dist"] == "empirical"
    seen = np.array([rtts[a] for a in sorted(set(cal.traffic.messages["account"]))])
    # each client's median estimate is its own rtt (to the 1 ms rounding): the points are the sample's quantiles
    assert len(rtt["points"]) >= 21
    for x, f in rtt["points"]:
        assert x == pytest.approx(np.quantile(seen, f), abs=1.5e-3)
    assert rtt["points"][0][0] >= 0.1 - 1e-3 and rtt["points"][-1][0] <= 0.3 + 1e-3


def test_round_trip_mean_survives_whole_second_stamps():
    rng = np.random.default_rng(19)
    accounts = _accounts(rng, 1500, 4.0, shares={"unknown": 1.0})
    sessions = user_sessions(rng, accounts, duration=lambda rng_, n: (6 + n) * 0.2 + (7 + n) * 0.002)
    exact = [(6 + s.messages[0]) for s in sessions]
    for s in sessions:  # classic syslog: both ends floored to the second
        end = s.connect_s + s.duration
        s.connect_s = float(math.floor(s.connect_s))
        s.duration = float(math.floor(end)) - s.connect_s
    cal = calibrate(parsed_log(sessions), OPTIONS)
    assert cal.traffic.resolution_s == 1.0
    fitted = cal.origins["unknown"].values["rtt"]
    # flooring both ends adds a triangular error on [-1, 1] (variance 1/6) to each duration
    se = math.sqrt(np.mean([(1 / 6) / k ** 2 for k in exact]) / len(exact))
    assert isinstance(fitted, float) and abs(fitted - 0.2) <= Z * se + 1e-4


def test_clients_with_many_sessions_keep_their_own_round_trips_through_whole_second_stamps():
    """List owners (or bots) with 40 sessions each: each one's mean is precise despite the 1 s
    stamps, so the scenario gets the clients' spread of round trips, not only their average."""
    rng = np.random.default_rng(20)
    own = {f"owner{i}": float(rng.uniform(0.1, 0.3)) for i in range(60)}
    sessions = []
    for i, (account, rtt) in enumerate(own.items()):
        for k in range(40):
            n = int(rng.integers(1, 4))
            start = T0 + 3600 * rng.uniform(0, 20)
            end = start + (6 + n) * rtt + (7 + n) * 0.002
            sessions.append(Session(float(math.floor(start)), *client("unknown", i), account, [n],
                                    float(math.floor(end) - math.floor(start))))
    cal = calibrate(parsed_log(sessions), OPTIONS)
    assert cal.traffic.resolution_s == 1.0
    rtt = cal.origins["unknown"].values["rtt"]
    assert rtt["dist"] == "empirical"
    truth = np.array(list(own.values()))
    # a client's mean over 40 sessions errs by at most Z · sqrt(1/6 / 40) / 7 ≈ 30 ms, and shrinking
    # towards the average takes that error's share out of the spread: quantiles within it
    tolerance = Z * math.sqrt(1 / 6 / 40) / 7
    for x, f in rtt["points"]:
        assert abs(x - np.quantile(truth, f)) <= tolerance, (x, f)
    xs = np.array([x for x, _ in rtt["points"]])
    assert xs.max() - xs.min() >= 0.5 * (truth.max() - truth.min())  # a spread, not a constant


def test_too_few_timed_sessions_fall_back_to_documented_round_trips():
    sessions = [Session(T0 + 60 * i, *client("home", i), f"u{i}", [1], None) for i in range(30)]
    cal = calibrate(parsed_log(sessions), OPTIONS)
    assert cal.origins["home"].values["rtt"] == 0.020
    assert "fewer than" in cal.origins["home"].comments["rtt"]


def test_mail_without_a_login_counts_per_address_and_other_services_are_left_out():
    sessions = [Session(T0 + 60 * i, *client("own", 1), "", [1]) for i in range(5)]
    sessions += [Session(T0 + 60 * i, *client("foreign", 2), "", [1], service="postfix/smtpd") for i in range(7)]
    sessions += [Session(T0 + 3600, *client("home", 3), "alice", [2])]
    cal = calibrate(parsed_log(sessions), OPTIONS)
    accounts = cal.traffic.messages.groupby("account").size().to_dict()
    assert accounts == {"[198.51.0.1]": 5, "alice": 1}


def _duration_mean(points):
    """The mean of a duration ``empirical`` distribution, as scenarios/README.md defines it."""
    mean = points[0][0] * points[0][1]
    for (xa, fa), (xb, fb) in zip(points, points[1:]):
        mean += (fb - fa) * (xa + xb) / 2
    return mean


def test_few_distinct_durations_keep_their_probabilities():
    from simsub.maillog.fit import empirical_durations

    values = [9.0] * 20 + [10.0] * 60 + [11.0] * 20  # a 10 s pause seen through whole-second stamps
    points = empirical_durations(values)
    assert points == [(9.0, 0.2), (9.999, 0.2), (10.0, 0.8), (10.999, 0.8), (11.0, 1.0)]
    assert _duration_mean(points) == pytest.approx(np.mean(values), abs=1e-3)
    spread = np.random.default_rng(20).uniform(0.1, 0.3, 1000)
    quantiles = empirical_durations(spread, step=0.001)
    assert 21 <= len(quantiles) <= 23 and abs(_duration_mean(quantiles) - spread.mean()) < 0.005


def test_a_log_of_only_abuse_is_refused_with_advice():
    rng = np.random.default_rng(21)
    bots = [client("unknown", i) for i in range(20)]
    sessions = botnet_sessions(rng, ["victim"], bots, T0, T0 + 3600, pause=30.0)
    with pytest.raises(ScenarioError, match="no legitimate mail left.*--max-addresses"):
        calibrate(parsed_log(sessions, deliveries=False), OPTIONS)


def test_a_class_with_a_tiny_share_is_left_out_not_written_as_zero():
    from simsub.maillog.calibrate import _shares

    shares = _shares(pd.Series(["own"] * 3_000_000 + ["unknown"]))
    assert shares == {"own": 1.0}


@pytest.mark.parametrize("last, hours, outside", [
    (23 * 3600 + 20 * 60, 24, 0),   # a quiet last hour still counts
    (24 * 3600 + 5 * 60, 24, 1),    # a retry just after midnight is a straggler
    (24 * 3600 + 20 * 60, 25, 0),   # twenty minutes into the hour is traffic
])
def test_horizon_runs_to_the_hour_of_the_last_session(last, hours, outside):
    sessions = [Session(T0 + 600 * i, *client("own", i), f"u{i}", [1]) for i in range(100)]
    sessions.append(Session(T0 + last, *client("own", 1), "u1", [1], 0.5))
    cal = calibrate(parsed_log(sessions), OPTIONS)
    assert cal.traffic.horizon_s == hours * 3600
    assert cal.legit_messages == 101 - outside
    assert any("outside the horizon" in n for n in cal.header) == bool(outside)


def test_the_own_origin_keeps_the_real_mynetworks_range():
    """permit_mynetworks, the export's mynetworks and a replay of the log (which tells own
    clients by address) must see the network the admin gave, not an invented one."""
    rng = np.random.default_rng(5)
    cal = calibrate(parsed_log(user_sessions(rng, _accounts(rng, 200, 6.0))), OPTIONS)
    assert cal.origins["own"].values["network"] == MYNETWORKS
    assert cal.origins["own"].values["mynetworks"] is True
    assert cal.origins["unknown"].values["network"] != MYNETWORKS
