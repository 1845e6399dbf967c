"""The scenario library (scenarios/*.toml): every file loads, every policy runs,
parameters are declared and used, and each library scenario shows its point.

Runs are shortened (small horizon, fewer clients, bots starting at once) so the
whole file takes seconds; the behavioural checks compare policies on the same
seed (common random numbers) and assert directions, not exact numbers.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

import simsub
from simsub.scenario import declared_params

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))
LIBRARY = ["patient-bots", "adaptive-bots", "heavy-legit", "port25-2007"]
SEED = 7


def raw(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def shortened(path: Path, horizon: str = "10m") -> dict:
    """Overrides that make any scenario file a quick run: a short horizon, a
    twentieth of each user population (never fewer than the stolen accounts
    drawn from it), a tenth of each botnet, bots starting at once."""
    data = raw(path)
    populations = data["populations"]
    overrides: dict = {"horizon": horizon}
    accounts_needed: dict[str, int] = {}
    for p in populations:
        if p["kind"] == "bot" and "accounts_from" in p:
            accounts = p["accounts"]
            if isinstance(accounts, str):  # a ${param} reference
                accounts = declared_params(data)[accounts.strip("${}")]
            accounts_needed[p["accounts_from"]] = max(accounts_needed.get(p["accounts_from"], 0), accounts)
    for p in populations:
        name = p["name"]
        count = p["count"]
        if isinstance(count, str):
            count = declared_params(data)[count.strip("${}")]
        if p["kind"] == "user":
            overrides[f"populations.{name}.count"] = max(1, count // 20, accounts_needed.get(name, 0))
        else:
            overrides[f"populations.{name}.count"] = max(1, count // 10)
            overrides[f"populations.{name}.start"] = "0s"
            overrides[f"populations.{name}.ramp"] = "1m"
    return overrides


@lru_cache(maxsize=None)
def short_scenario(path: Path):
    return simsub.load_scenario(path, shortened(path))


def test_the_library_is_there():
    names = {p.stem for p in SCENARIOS}
    assert set(LIBRARY) <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_loads_and_every_policy_compiles(path):
    scenario = simsub.load_scenario(path)
    assert scenario.policies, "a scenario needs at least one policy"
    for name in scenario.policies:
        assert scenario.policy_named(name) == name


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_declared_param_is_referenced(path):
    text = path.read_text(encoding="utf-8")
    params = declared_params(raw(path))
    for name in params:
        assert re.search(r"(?<!\$)\$\{" + re.escape(name) + r"\}", text), f"{path.name}: ${{{name}}} is never used"


@pytest.mark.parametrize("name", LIBRARY)
def test_library_scenarios_declare_params(name):
    path = REPO / "scenarios" / f"{name}.toml"
    params = declared_params(raw(path))
    assert params, f"{path.name} declares no [params]"
    # Setting each parameter to its own default changes nothing and is accepted.
    simsub.load_scenario(path, dict(params))


@pytest.mark.parametrize(
    "path,policy",
    [(path, policy) for path in SCENARIOS for policy in raw(path)["policies"]],
    ids=lambda v: v.stem if isinstance(v, Path) else v,
)
def test_every_policy_runs_a_short_horizon(path, policy):
    result = simsub.run(short_scenario(path), policy=policy, seed=SEED)
    assert result.summary["run"]["policy"] == policy
    assert result.summary["legit"]["messages"] + result.summary["spam"]["messages"] > 0


# ------------------------------------------------------------------ behaviour
def run(name: str, policy: str, overrides: dict):
    return simsub.run(REPO / "scenarios" / f"{name}.toml", policy=policy, seed=SEED, overrides=overrides).summary


def test_patient_bots_pass_the_tarpit_but_not_the_throttle():
    # An hour of the attack with a tenth of the subscribers: the tarpit lets
    # every patient bot through and fills every smtpd; the throttle caps the
    # 4 stolen accounts at 100 messages each.
    overrides = {"horizon": "1h", "populations.botnet.start": "0s", "populations.subscribers.count": 2000}
    none = run("patient-bots", "none", overrides)
    tarpit = run("patient-bots", "selective-1-5s", overrides)
    throttle = run("patient-bots", "throttle", overrides)
    # Most bots get spam through (the others found no free smtpd in time).
    assert tarpit["spam"]["bots_succeeding"] > 0.8
    assert tarpit["smtpd"]["busy_peak"] == tarpit["smtpd"]["process_limit"] > none["smtpd"]["busy_peak"]
    assert throttle["spam"]["recipients_accepted"] < tarpit["spam"]["recipients_accepted"] < none["spam"]["recipients_accepted"]


def test_adaptive_bots_pass_the_throttle_but_not_the_spread_detector():
    # A third of the botnet on a third of the accounts keeps each account at
    # ~50 messages an hour from ~45 addresses, so an account passes 30
    # addresses after ~40 minutes; owners of the stolen accounts send enough
    # in two hours for their lock-out to show.
    overrides = {"horizon": "2h", "populations.botnet.start": "0s", "bots": 330, "accounts": 100,
                 "populations.subscribers.count": 300, "populations.subscribers.messages_per_day": 100}
    none = run("adaptive-bots", "none", overrides)
    throttle = run("adaptive-bots", "throttle", overrides)
    lock = run("adaptive-bots", "distinct-lock", overrides)
    assert throttle["spam"]["recipients_accepted"] >= 0.95 * none["spam"]["recipients_accepted"]
    assert lock["spam"]["recipients_accepted"] < 0.5 * none["spam"]["recipients_accepted"]
    assert lock["spam"]["auth_failed"] > 0
    assert lock["legit"]["failed_by_outcome"].get("auth_failed", 0) > none["legit"]["failed"]


def test_heavy_legit_each_throttle_hits_its_own_victims():
    # Flat days so that an hour from midnight has office and list traffic:
    # the office sends ~420 messages an hour from one address, each list
    # owner ~170 an hour from its own.
    flat = [1] * 24
    overrides = {"horizon": "1h", "bots": 10, "populations.botnet.start": "0s",
                 "populations.subscribers.count": 1840, "populations.roamers.count": 60,
                 "populations.nordns.count": 100,
                 "populations.office.diurnal": flat, "populations.office.messages_per_day": 50,
                 "populations.listowners.diurnal": flat, "populations.listowners.messages_per_day": 4000}
    user = run("heavy-legit", "throttle-user", overrides)["legit"]["by_origin"]
    address = run("heavy-legit", "throttle-address", overrides)["legit"]["by_origin"]
    tarpit = run("heavy-legit", "selective-1-5s", overrides)["legit"]["by_origin"]
    assert address["office"]["failed"] > user["office"]["failed"] == 0
    assert user["biz"]["failed"] > 0
    assert tarpit["foreign"]["false_delay_rate"]["1s"] > 0.9 and tarpit["unknown"]["false_delay_rate"]["1s"] > 0.9
    assert tarpit["own"]["false_delay_rate"]["1s"] == 0


def test_port25_longer_banner_delay_stops_more_bots():
    overrides = {"horizon": "1h"}
    none = run("port25-2007", "none", overrides)["spam"]
    short = run("port25-2007", "banner-65s", overrides)["spam"]
    long = run("port25-2007", "banner-120s", overrides)["spam"]
    assert long["bots_succeeding"] < short["bots_succeeding"] < none["bots_succeeding"]
    assert long["recipients_accepted"] < short["recipients_accepted"] < none["recipients_accepted"]
