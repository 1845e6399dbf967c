"""Round trips: simulate may-2012, calibrate from what the run leaves, recover the scenario.

The issue's criteria: daily volume within 5 %, origin shares within 0.02, the
stolen accounts found with no legitimate account flagged, recipients and
per-account volumes not distinguishable by a two-sample test (KS, 0.1 %).
The first test converts the run's own message table into parsed-log tables
(no writer, no parser: calibrate alone); the second goes through the real
thing, ``write_maillog`` then ``parse_maillog``, on a 14 h horizon (the botnet
starts at 12 h) with classic 1 s stamps.  The last criterion — ``compare`` on
the fitted scenario lands with the original's on the headline metrics — is
checked on that same log, per policy and metric (see
:func:`test_compare_on_the_fitted_scenario_lands_with_the_original`).
"""

from __future__ import annotations

import ipaddress
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import simsub
from simsub.maillog.calibrate import CalibrateOptions, calibrate
from simsub.maillog.scenario_text import scenario_toml

from .maillog_frames import AUTH_FAILURE_COLUMNS, MESSAGE_COLUMNS, SESSION_COLUMNS, _frame

T0 = 1_337_040_000.0  # 2012-05-15 00:00 UTC
HORIZON = "14h"  # the botnet of may-2012 starts at 12 h: two hours of it


def _check_round_trip(scenario, original, cal, tmp_path, seed=2):
    """The issue's criteria for a calibration ``cal`` of ``original`` (a run of ``scenario``)."""
    m = original.messages
    # the stolen accounts, and no legitimate one
    assert set(cal.flagged["account"]) == set(m.loc[m["kind"] == "bot", "account"])
    path = tmp_path / "fitted.toml"
    path.write_text(scenario_toml(cal))
    fitted = simsub.load_scenario(path)
    users = [p for p in fitted.populations if p.kind == "user"]
    # origin shares within 0.02 (over all user classes, weighted by their clients)
    classes = {"own": "own", "jp": "home", "foreign": "foreign", "unknown": "unknown"}  # may-2012's names → classes
    for origin, share in scenario.populations[0].origins.items():
        fitted_share = sum(p.count * p.origins.get(classes[origin], 0) for p in users) / sum(p.count for p in users)
        assert abs(fitted_share - share) <= 0.02, origin
    (bot,) = [p for p in fitted.populations if p.kind == "bot"]
    assert bot.accounts == 50
    assert abs(bot.count - 100) <= 5  # some bots' addresses collide in may-2012's small ranges

    rerun = simsub.run(fitted, policy="none", seed=seed)
    r = rerun.messages
    for kind in ("user", "bot"):  # volume within 5 % (users: the daily volume; bots: a closed loop)
        logged, simulated = (m["kind"] == kind).sum(), (r["kind"] == kind).sum()
        assert abs(simulated - logged) <= 0.05 * logged, kind
    # recipients and per-account volume: two-sample tests at the 0.1 % level
    for kind in ("user", "bot"):
        a = m.loc[m["kind"] == kind, "recipients"]
        b = r.loc[r["kind"] == kind, "recipients"]
        assert stats.ks_2samp(a, b).pvalue > 0.001, kind
    per_account = m[m["kind"] == "user"].groupby("account").size()
    refit = r[r["kind"] == "user"].groupby("account").size()
    assert stats.ks_2samp(per_account, refit).pvalue > 0.001


def log_tables(result: simsub.Result) -> object:
    """Parsed-log tables of a run's messages: one session per attempt-free message (policy none).

    Each client gets one address in its origin's network and the origin's
    hostname with its own number; times are the run's plus T0."""
    scenario = result.scenario
    m = result.messages
    origins = scenario.origins
    clients = m[["population", "client", "origin"]].drop_duplicates().reset_index(drop=True)
    clients["n"] = clients.groupby("origin").cumcount()
    names, addresses = [], []
    for row in clients.itertuples(index=False):
        origin = origins[row.origin]
        network = ipaddress.ip_network(origin.network if isinstance(origin.network, str) else str(origin.network))
        names.append(origin.hostname.replace("{n}", str(row.n)))
        addresses.append(str(network.network_address + row.n % network.num_addresses))
    clients["client_name"], clients["client_address"] = names, addresses
    m = m.merge(clients, on=["population", "client", "origin"], how="left")
    m = m[m["outcome"] == "accepted"].reset_index(drop=True)
    connect = T0 + m["first_attempt_s"] + m["slot_wait_s"]
    sessions = pd.DataFrame({c: -1 for c in SESSION_COLUMNS}, index=m.index)
    sessions = sessions.assign(
        session_id=m.index, host="mx", service="postfix/submission", pid=1000, connect_s=connect,
        disconnect_s=T0 + m["end_s"], client_name=m["client_name"], client_address=m["client_address"],
        sasl_method="PLAIN", sasl_username=m["account"], end="disconnect", lost_after="", auth_ok=1, auth_tried=1,
        mail_ok=1, mail_tried=1, rcpt_ok=m["recipients_accepted"], rcpt_tried=m["recipients"])
    messages = pd.DataFrame({
        "queue_id": [f"{i:011X}" for i in m.index], "session_id": m.index, "accepted_s": T0 + m["accepted_s"],
        "client_name": m["client_name"], "client_address": m["client_address"], "sasl_username": m["account"],
        "sender": "", "size": 600, "nrcpt": m["recipients_accepted"], "removed_s": np.nan})[MESSAGE_COLUMNS]
    return type("Parsed", (), {"sessions": sessions[SESSION_COLUMNS], "messages": messages,
                               "recipients": _frame([], ["queue_id", "recipient"]),
                               "auth_failures": _frame([], AUTH_FAILURE_COLUMNS), "stats": {}})()


@pytest.mark.slow
def test_may_2012_round_trip_through_the_run_tables(tmp_path):
    scenario = simsub.load_scenario(None)
    original = simsub.run(scenario, policy="none", seed=1)
    cal = calibrate(log_tables(original), CalibrateOptions(mynetworks=str(scenario.origins["own"].network),
                                                           home_domain="jp"))
    _check_round_trip(scenario, original, cal, tmp_path)


@pytest.fixture(scope="module")
def simulated_maillog(tmp_path_factory):
    """may-2012 on a 14 h horizon (the botnet starts at 12 h), policy none, seed 1, through
    ``write_maillog`` (classic syslog stamps, 1 s) and ``parse_maillog``: (scenario, run, parsed log)."""
    from simsub.maillog.parse import parse_maillog
    from simsub.report.maillog import MaillogOptions, write_maillog

    scenario = simsub.load_scenario(None, {"scenario.horizon": HORIZON})
    original = simsub.run(scenario, policy="none", seed=1)
    log = tmp_path_factory.mktemp("maillog") / "maillog"
    write_maillog(original, log, MaillogOptions())
    return scenario, original, parse_maillog([log], year=2012)


@pytest.mark.slow
def test_may_2012_round_trip_through_a_simulated_maillog(simulated_maillog, tmp_path):
    scenario, original, parsed = simulated_maillog
    cal = calibrate(parsed, CalibrateOptions(mynetworks=str(scenario.origins["own"].network), home_domain="jp"))
    assert cal.traffic.horizon_s == 14 * 3600 and cal.traffic.resolution_s == 1.0
    _check_round_trip(scenario, original, cal, tmp_path)


# --------------------------------------------------------------- compare on the fitted scenario
#: may-2012's policies run on both scenarios: the baseline, two selective tarpits (5 s stops
#: most bots, whose patience is about 4 s; 3 s lets most through and ties up smtpd processes)
#: and a per-account throttle that the bots' stolen accounts hit and their owners with them.
COMPARED = ("none", "selective-1-5s", "selective-3s", "throttle-100h")
REPLICATIONS = 5
ROOT_SEED = 7  # the compare's root seed, shared by both scenarios (not the log's seed 1)
#: Family-wise level over every (policy, metric) check that varies between runs: a perfect
#: calibration fails the test with probability at most 1 % (Bonferroni).
FAMILY_ALPHA = 0.01
#: Tables of may-2012 that calibrate does not fit (behind the front end): left out of the original.
BACK_END = ("queue", "destinations", "reputation", "operator")


@pytest.fixture(scope="module")
def compared(simulated_maillog, tmp_path_factory):
    """``compare`` of the original and of the scenario fitted to its maillog: (original runs, fitted runs).

    The original is may-2012 on the log's horizon without its back end; the
    fitted scenario is calibrate's, given what a log cannot tell from the
    original (the bots' patience, connect timeout and behaviour on timeout)
    and carrying the original's policies (their maps key on names, which
    calibrate keeps by domain, and on permit_mynetworks, whose range it keeps).
    """
    import tomllib

    import tomli_w

    from simsub.experiments.study import compare
    from simsub.scenario.files import read_scenario_file

    scenario, _, parsed = simulated_maillog
    raw, _ = read_scenario_file(None)
    (bot,) = [p for p in raw["populations"] if p["kind"] == "bot"]
    cal = calibrate(parsed, CalibrateOptions(
        mynetworks=str(scenario.origins["own"].network), home_domain="jp", bot_patience=bot["patience"],
        bot_connect_timeout=bot["connect_timeout"], bot_on_timeout=bot["on_timeout"]))
    folder = tmp_path_factory.mktemp("compare")
    original = {k: v for k, v in raw.items() if k not in BACK_END}
    original["scenario"] = {**raw["scenario"], "horizon": HORIZON}
    fitted = tomllib.loads(scenario_toml(cal))
    fitted["policies"] = {**fitted["policies"], **{name: raw["policies"][name] for name in COMPARED}}
    experiments = []
    for name, table in (("original", original), ("fitted", fitted)):
        path = folder / f"{name}.toml"
        path.write_text(tomli_w.dumps(table))
        experiment = compare(path, COMPARED, replications=REPLICATIONS, seed=ROOT_SEED, workers=2, progress=False)
        assert (experiment.runs["status"] == "ok").all()
        experiments.append(experiment)
    # The original on the log's seed under every policy (the seed draws the same clients whatever the
    # policy; without the back end the run differs from the logged one by a few tenths of a percent):
    # the fitted scenario inherits that run's draws, which the table shows next to the original's mean.
    from simsub.experiments.metrics import flatten_summary

    log_run = {policy: flatten_summary(simsub.run(simsub.load_scenario(folder / "original.toml"), policy=policy,
                                                  seed=1).summary) for policy in COMPARED}
    print("\n" + comparison_table(*experiments, log_run))
    return tuple(e.runs for e in experiments)


def _samples(runs, policy: str, metric: str) -> np.ndarray:
    return runs.loc[runs["policy"] == policy].sort_values("seed")[metric].to_numpy(dtype=float)


def two_sample(a: np.ndarray, b: np.ndarray, level: float = 0.05) -> tuple[float, float]:
    """(p-value, largest |mean(b) − mean(a)| accepted at ``level``) for "``b``'s expectation is ``a``'s,
    up to one run of ``a``".

    ``a``: the original's values, ``b``: the fitted scenario's.  The fitted
    scenario is fitted to the log of *one* run of the original, so its
    expectation carries that run's own deviation from the original's
    expectation wherever calibrate freezes what the run drew (the bots' round
    trips, origin shares, volume): up to one more run's variance.  Hence the
    variance of mean(b) − mean(a) is taken as s_a²(1 + 1/n_a) + s_b²/n_b — a
    prediction interval for one run of the original, not the confidence
    interval of its mean, which a perfect calibration would miss often — with
    Welch–Satterthwaite degrees of freedom.  Both samples without variation:
    p is 1 if they agree and 0 if not (and no difference is accepted).
    """
    na, nb = len(a), len(b)
    va, vb = a.var(ddof=1) * (1 + 1 / na), b.var(ddof=1) / nb
    if va + vb == 0:
        return (1.0 if np.isclose(a.mean(), b.mean(), rtol=1e-9, atol=0) else 0.0), 0.0
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    t = abs(b.mean() - a.mean()) / se
    return float(2 * stats.t.sf(t, df)), float(stats.t.ppf(1 - level / 2, df) * se)


def _varying(original, fitted) -> int:
    """How many (policy, metric) checks vary between runs in either scenario (the Bonferroni family)."""
    return max(1, sum(1 for p in COMPARED for m in _headline()
                      if np.ptp(_samples(original, p, m)) + np.ptp(_samples(fitted, p, m)) > 0))


def _headline() -> list[str]:
    from simsub.experiments.metrics import HEADLINE

    return [m.name for m in HEADLINE]


def comparison_table(original, fitted, log_run) -> str:
    """Markdown: per policy and headline metric, the original's mean [95 % CI] (``compare``'s own
    interval) and standard deviation over runs, the fitted scenario's mean and standard deviation,
    the p-value of :func:`two_sample`, and the run of the original the log came from."""
    ci = original.summary.set_index(["policy", "metric"])
    level = FAMILY_ALPHA / _varying(original.runs, fitted.runs)
    lines = ["| policy | metric | original: mean [95 % CI], sd | the log's run | fitted: mean, sd | "
             "accepted difference | p |", "|---|---|---|---|---|---|---|"]
    for policy in COMPARED:
        for metric in _headline():
            a, b = _samples(original.runs, policy, metric), _samples(fitted.runs, policy, metric)
            row = ci.loc[(policy, metric)]
            p, accepted = two_sample(a, b, level)
            inside = "" if row["ci_low"] <= b.mean() <= row["ci_high"] else " (outside)"
            logged = log_run[policy].get(metric, math.nan) if metric != "spam.reduction" else math.nan
            lines.append(f"| {policy} | {metric} | {row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}], "
                         f"{a.std(ddof=1):.2g} | {logged:.4g} | {b.mean():.4g}{inside}, {b.std(ddof=1):.2g} | "
                         f"±{accepted:.2g} | {p:.2g} |")
    return "\n".join(lines)


#: (policy, metric) checks that fail for a known limitation of calibrate (docs/calibrate.md): none.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


@pytest.mark.slow
@pytest.mark.parametrize("policy,metric", [
    pytest.param(p, m, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[p, m])) if (p, m) in KNOWN_GAPS
    else (p, m) for p in COMPARED for m in _headline()])
def test_compare_on_the_fitted_scenario_lands_with_the_original(compared, policy, metric):
    """The issue's last criterion: ``compare`` on the fitted scenario agrees with the original's.

    may-2012 (14 h, policy none, seed 1) goes through ``write_maillog`` and
    ``parse_maillog``; calibrate fits a scenario to the log and is given what a
    log cannot tell, from the original: the bots' patience (lognormal, median
    4 s), connect timeout (30 s) and behaviour on timeout (disconnect).  Both
    scenarios then run the same four policies on the same 5 seeds, front end
    only (calibrate does not fit what is behind it), and for every policy and
    headline metric the fitted mean must not differ significantly from the
    original's: a two-sample test (:func:`two_sample`) whose variance includes
    one run of the original, because the fitted scenario inherits its log's
    run.  The level is 1 % for the whole family of checks whose values vary
    (Bonferroni over them); a check whose values are constant in both
    scenarios (no legitimate mail failed, every bot succeeding under policy
    none) must agree exactly.  The tolerance is therefore set by the runs'
    own spread, not chosen: the table printed by the fixture (``-s``) gives the
    original's confidence interval and the fitted mean, and docs/calibrate.md
    the measured values.
    """
    original, fitted = compared
    a, b = _samples(original, policy, metric), _samples(fitted, policy, metric)
    varying = _varying(original, fitted)
    p, accepted = two_sample(a, b, FAMILY_ALPHA / varying)
    assert p > FAMILY_ALPHA / varying, (
        f"{policy} {metric}: original {a.mean():.4g} (runs {a.tolist()}), fitted {b.mean():.4g} "
        f"(runs {b.tolist()}); accepted difference ±{accepted:.3g}, p = {p:.3g} < {FAMILY_ALPHA}/{varying}")
