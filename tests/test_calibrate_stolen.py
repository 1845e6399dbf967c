"""Stolen-account detection: planted abuse is found, tricky legitimate senders are not.

One three-day synthetic log (days 0-2) holds ordinary users, a botnet that
uses three subscribers' accounts from 30 addresses on day 1, a single
address that bursts through a quiet account on day 2, and the legitimate
cases that naive rules flag: a roaming user with three addresses, a user in
three hotels abroad, a mobile user crossing six networks, a list owner
sending 400 messages a day from one address, a newsletter from the owner's
own address, and an office of 40 behind one NAT address.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import simsub
from simsub.maillog.calibrate import CalibrateOptions, calibrate
from simsub.maillog.scenario_text import scenario_toml
from simsub.maillog.stolen import DetectionOptions

from .maillog_frames import MYNETWORKS, Session, botnet_sessions, client, parsed_log, user_sessions

T0 = 1_336_953_600.0  # 2012-05-14 00:00
DAY = 86400.0
STOLEN = ["user0", "user1", "user2"]
BOTS = [client("unknown", 5000 + i) for i in range(20)] + [client("foreign", 5000 + i) for i in range(10)]
BURSTER = ("mail.example-vps.ru", "203.0.200.9")


def _world() -> list[Session]:
    rng = np.random.default_rng(2012)
    origins = rng.choice(["own", "home", "foreign", "unknown"], p=[0.8, 0.12, 0.03, 0.05], size=600)
    accounts = {f"user{i}": (str(o), i, 4.0) for i, o in enumerate(origins)}
    sessions = user_sessions(rng, accounts, days=3, t0=T0)
    sessions += botnet_sessions(rng, STOLEN, BOTS, T0 + DAY + 12 * 3600, T0 + DAY + 18 * 3600, pause=30.0)
    # a quiet account: 5 a day from its own network, then one new address abroad bursts on day 2
    sessions += user_sessions(rng, {"quiet": ("own", 900, 5.0)}, days=3, t0=T0)
    sessions += [Session(T0 + 2 * DAY + 9 * 3600 + 20 * i, *BURSTER, "quiet", [20], 3.0) for i in range(200)]
    # --- legitimate but unusual
    for day in range(3):
        base = T0 + day * DAY + 8 * 3600
        for j, where in enumerate([client("own", 901), client("foreign", 901), client("unknown", 901)] * 2):
            sessions.append(Session(base + 3600 * j, *where, "roamer", [1], 2.0))
        for j in range(3):  # three hotels abroad in one day: three suspect addresses, the limit
            sessions.append(Session(base + 1800 + 3600 * j, *client("foreign", 910 + 3 * day + j), "traveller", [2], 2.0))
        for j in range(6):  # a phone crossing six /24s of a domestic carrier (home rDNS)
            sessions.append(Session(base + 600 + 1200 * j, f"m{j}.mobile.example-carrier.ne.jp",
                                    f"203.0.{150 + j}.{day + 1}", "mobile", [1], 2.0))
        for j in range(400):  # a list owner: 400 messages of 50 recipients a day from one address
            sessions.append(Session(base + 60 * j, *client("own", 950), "lists", [50], 8.0))
        for j in range(40):  # an office behind one NAT address
            sessions.append(Session(base + 300 * j + 7, "gw.office.example.co.jp", "203.0.120.77", f"staff{j}",
                                    [1], 1.0))
    for j in range(2):  # a newsletter owner: 2 a day, then 300 × 30 recipients from the same address
        for day in range(2):
            sessions.append(Session(T0 + day * DAY + 10 * 3600 + 60 * j, *client("own", 960), "newsletter", [1], 1.0))
    sessions += [Session(T0 + 2 * DAY + 10 * 3600 + 30 * i, *client("own", 960), "newsletter", [30], 2.0)
                 for i in range(300)]
    return sorted(sessions, key=lambda s: s.connect_s)


@pytest.fixture(scope="module")
def world():
    sessions = _world()
    return sessions, parsed_log(sessions, deliveries=False)  # no delivery lines: a log of smtpd only


@pytest.fixture(scope="module")
def fitted(world):
    return calibrate(world[1], CalibrateOptions(mynetworks=MYNETWORKS, home_domain="jp"))


def test_the_planted_accounts_are_flagged_and_no_legitimate_one(world, fitted):
    flagged = fitted.flagged.set_index("account")
    assert set(flagged.index) == set(STOLEN) | {"quiet"}
    for account in STOLEN:
        assert flagged.loc[account, "rules"] == "burst,spread,suspect"  # 5,000 messages vs ~4 a day
        assert flagged.loc[account, "days"] == "2012-05-15"
        day1 = {s.client_address for s in world[0]
                if s.sasl_username == account and T0 + DAY <= s.connect_s < T0 + 2 * DAY}
        assert len(day1) in (30, 31)  # the bots' and perhaps the owner's
        assert f"logins from {len(day1)} addresses (limit 10)" in flagged.loc[account, "reasons"]
        assert "logins from 30 addresses without home rDNS (limit 3)" in flagged.loc[account, "reasons"]
    assert flagged.loc["quiet", "rules"] == "burst"
    assert "100% from networks new to the account" in flagged.loc["quiet", "reasons"]


def test_bot_and_owner_traffic_are_separated(world, fitted):
    sessions, _ = world
    flagged = fitted.flagged.set_index("account")
    bot_addresses = {a for _, a in BOTS}
    for account in STOLEN:
        bots = [s for s in sessions if s.sasl_username == account and s.client_address in bot_addresses]
        owner = [s for s in sessions if s.sasl_username == account and s.client_address not in bot_addresses]
        assert flagged.loc[account, "bot_addresses"] == 30
        assert flagged.loc[account, "bot_messages"] == len(bots)
        assert flagged.loc[account, "owner_messages"] == len(owner)
        assert flagged.loc[account, "first_abuse_s"] == min(s.connect_s for s in bots)
    assert flagged.loc["quiet", "bot_addresses"] == 1
    assert flagged.loc["quiet", "bot_messages"] == 200
    assert fitted.bot_messages == flagged["bot_messages"].sum()


def test_each_campaign_is_a_bot_population_with_the_behaviour_the_log_shows(world, fitted):
    sessions, _ = world
    bots = [p for p in fitted.populations if p.values["kind"] == "bot"]
    assert [b.values["name"] for b in bots] == ["botnet1", "botnet2"]  # unrelated: no address in common
    botnet, burst = bots[0].values, bots[1].values
    botnet_sessions = [s for s in sessions if s.client_address in {a for _, a in BOTS}]
    assert botnet["count"] == 30 and botnet["accounts"] == 3
    users = [p.values for p in fitted.populations if p.values["kind"] == "user"]
    assert botnet["accounts_from"] == max(users, key=lambda p: p["count"])["name"]  # the owners send mail too
    assert botnet["start"] == f"{round(min(s.connect_s for s in botnet_sessions) - T0, 3):g}s"
    assert botnet["stop"] == f"{round(max(s.connect_s for s in botnet_sessions) - T0, 3):g}s"
    assert botnet["origins"] == {"bot-foreign": round(10 / 30, 6), "bot-unknown": round(1 - round(10 / 30, 6), 6)}
    assert botnet["parallel"] == 1
    logged = np.array([s.messages[0] for s in botnet_sessions])
    assert botnet["recipients"]["points"] == [[int(x), pytest.approx(np.mean(logged <= x), abs=1e-6)]
                                              for x in np.unique(logged)]
    assert bots[0].comments["pause"].startswith(f"{len(botnet_sessions) - 30:,} gaps")  # one fewer than sessions, per address
    assert burst["count"] == 1 and burst["accounts"] == 1 and "accounts_from" not in burst
    assert "earlier campaign already takes its logins" in bots[1].comments["accounts"]
    assert burst["start"] == "57h"  # day 2, 09:00
    assert burst["recipients"]["points"] == [[20, 1.0]]
    assert burst["origins"] == {"bot-foreign": 1.0}
    # pause: the logged gap (20 s between starts, sessions of 3 s) plus half the effective round trip
    # of its sessions, (3 - 27 × 2 ms) / 26, and the reply time
    half_rtt = (3.0 - 27 * 0.002) / 26 / 2
    assert burst["pause"] == f"{round(17.0 + half_rtt + 0.002, 3):g}s"


def test_each_threshold_is_a_strict_limit(world):
    high = DetectionOptions(max_addresses=100, max_networks=100, max_suspect=100, burst_min=10**9)
    for limit, expected in ((29, set(STOLEN)), (30, set())):
        options = CalibrateOptions(mynetworks=MYNETWORKS, home_domain="jp",
                                   detection=replace(high, max_suspect=limit))
        assert set(calibrate(world[1], options).flagged["account"]) == expected
    # each account's own count: the 30 bots, plus its owner's address if the owner sent mail that day
    seen = {a: len({s.client_address for s in world[0] if s.sasl_username == a and T0 + DAY <= s.connect_s < T0 + 2 * DAY})
            for a in STOLEN}
    for limit in (29, 30, 31):
        options = CalibrateOptions(mynetworks=MYNETWORKS, home_domain="jp",
                                   detection=replace(high, max_addresses=limit))
        assert set(calibrate(world[1], options).flagged["account"]) == {a for a, n in seen.items() if n > limit}


def test_a_burst_from_known_networks_counts_only_when_asked(world):
    options = CalibrateOptions(mynetworks=MYNETWORKS, home_domain="jp",
                               detection=DetectionOptions(burst_any_network=True))
    flagged = calibrate(world[1], options).flagged.set_index("account")
    assert flagged.loc["newsletter", "rules"] == "burst"
    assert "list" not in flagged.index and "lists" not in flagged.index  # steady volume is no burst


def test_the_fitted_scenario_loads_and_runs(fitted, tmp_path):
    path = tmp_path / "fitted.toml"
    path.write_text(scenario_toml(fitted))
    scenario = simsub.load_scenario(path)
    names = [p.name for p in scenario.populations]
    assert names[-2:] == ["botnet1", "botnet2"] and len(names) >= 3
    result = simsub.run(scenario, policy="none", seed=1)
    assert result.summary["spam"]["messages"] > 0 and result.summary["legit"]["messages"] > 0
    # the loaded values are the fitted ones
    for fitted_population, loaded in zip(fitted.populations, scenario.populations):
        assert loaded.count == fitted_population.values["count"]
        assert loaded.origins == fitted_population.values["origins"]
    throttle = simsub.run(scenario, policy="throttle-legit-peak", seed=1)
    assert throttle.summary["spam"]["recipients_accepted"] < result.summary["spam"]["recipients_accepted"]


def test_flagged_table_columns(fitted):
    from simsub.maillog.stolen import FLAGGED_COLUMNS

    assert list(fitted.flagged.columns) == list(FLAGGED_COLUMNS)
    assert pd.api.types.is_integer_dtype(fitted.flagged["bot_messages"])


def test_ipv6_privacy_addresses_of_one_phone_count_once():
    from simsub.maillog.calibrate import CalibrateOptions as Options

    base = [Session(T0 + 3600 * h, *client("own", h), f"user{h}", [1]) for h in range(20)]
    # one phone, a new privacy address in its /64 for each of 20 messages: one address, one network
    phone = [Session(T0 + 600 * i, "unknown", f"2001:db8:1:2:{i:x}::{i + 1:x}", "phone", [1]) for i in range(20)]
    # a botnet across 12 different /48s: flagged
    bots = [Session(T0 + 300 * i, "unknown", f"2001:db8:{100 + i:x}::1", "victim", [40]) for i in range(12)]
    cal = calibrate(parsed_log(base + phone + bots), Options(mynetworks=MYNETWORKS, home_domain="jp"))
    flagged = cal.flagged.set_index("account")
    assert list(flagged.index) == ["victim"]
    assert flagged.loc["victim", "addresses"] == 12 and flagged.loc["victim", "networks"] == 12
