"""Round trips: simulate may-2012, calibrate from what the run leaves, recover the scenario.

The issue's criteria: daily volume within 5 %, origin shares within 0.02, the
stolen accounts found with no legitimate account flagged, recipients and
per-account volumes not distinguishable by a two-sample test (KS, 0.1 %).
The first test converts the run's own message table into parsed-log tables
(no writer, no parser: calibrate alone); the second goes through the real
thing, ``write_maillog`` then ``parse_maillog``, on a 14 h horizon (the botnet
starts at 12 h) with classic 1 s stamps.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import simsub
from simsub.maillog.calibrate import CalibrateOptions, calibrate
from simsub.maillog.scenario_text import scenario_toml

from .maillog_frames import AUTH_FAILURE_COLUMNS, MESSAGE_COLUMNS, SESSION_COLUMNS, _frame

T0 = 1_337_040_000.0  # 2012-05-15 00:00 UTC


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


@pytest.mark.slow
def test_may_2012_round_trip_through_a_simulated_maillog(tmp_path):
    from simsub.maillog.parse import parse_maillog
    from simsub.report.maillog import MaillogOptions, write_maillog

    scenario = simsub.load_scenario(None, {"scenario.horizon": "14h"})
    original = simsub.run(scenario, policy="none", seed=1)
    log = tmp_path / "maillog"
    write_maillog(original, log, MaillogOptions())  # classic syslog stamps, 1 s
    cal = calibrate(parse_maillog([log], year=2012),
                    CalibrateOptions(mynetworks=str(scenario.origins["own"].network), home_domain="jp"))
    assert cal.traffic.horizon_s == 14 * 3600 and cal.traffic.resolution_s == 1.0
    _check_round_trip(scenario, original, cal, tmp_path)
