"""The scaled-down scenario that ``simsub twin`` plays against real Postfix and the model.

A twin run lasts ``duration`` seconds of real time.  It plays the scenario's
window [``start``, ``start + duration``): bot campaigns are shifted by
``start`` and the users' diurnal weights rotated by its whole hours, so
``--start 12h`` plays the hour the May 2012 bots arrived.  ``scale``
multiplies every population, the bots' stolen accounts and the server's
process limit (at least 1 each), so load and capacity shrink together; the
accept queue is the private Postfix's, max(process limit, 100).  Only the submission service is compared: the mail queue,
destinations, reputation lists and operator are dropped, since the private
Postfix delivers to discard(8).
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ScenarioError
from ..postfix.instance import DEFAULT_PROCESS_LIMIT
from ..scenario.types import Scenario


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale)) if n > 0 else 0


def twin_scenario(scenario: Scenario, *, duration: float, scale: float = 1.0, start: float = 0.0,
                  reply_time: float | None = None) -> Scenario:
    """``scenario`` cut to the twin's window and scaled (see the module docstring).

    ``reply_time`` (s): smtpd's time per reply, as measured on the private
    instance; default: the scenario's.
    """
    label = scenario.label or scenario.name
    if not duration > 0 or not math.isfinite(duration):
        raise ScenarioError(label, "--duration", f"must be a positive duration, got {duration!r}")
    if not scale > 0 or not math.isfinite(scale):
        raise ScenarioError(label, "--scale", f"must be a positive number, got {scale!r}")
    if not start >= 0 or not math.isfinite(start):
        raise ScenarioError(label, "--start", f"must be a duration >= 0, got {start!r}")
    hours = int(start // 3600)
    populations = []
    for population in scenario.populations:
        changes: dict = {"count": _scaled(population.count, scale)}
        if population.is_bot:
            changes["accounts"] = _scaled(population.accounts, scale)
            changes["start"] = max(population.start - start, 0.0)
            # A campaign already under way at the window's start is partly ramped.
            ramp_done = min(max(start - population.start, 0.0), population.ramp)
            changes["ramp"] = population.ramp - ramp_done
            if population.stop is not None:
                changes["stop"] = population.stop - start
        elif population.diurnal is not None and hours:
            changes["diurnal"] = tuple(population.diurnal[(h + hours) % 24] for h in range(24))
        populations.append(dataclasses.replace(population, **changes))
    # Victims' accounts must exist among the scaled users; bots draw from accounts_from{k}.
    mta = dataclasses.replace(
        scenario.mta,
        process_limit=_scaled(scenario.mta.process_limit, scale),
        # Postfix's accept queue: max(maxproc, default_process_limit), the latter kept at
        # its default 100 in the private instance (smaller, it would cap every other service).
        backlog=max(_scaled(scenario.mta.process_limit, scale), DEFAULT_PROCESS_LIMIT),
        reply_time=scenario.mta.reply_time if reply_time is None else reply_time,
    )
    return dataclasses.replace(
        scenario,
        horizon=float(duration),
        bin=min(scenario.bin, float(duration)),
        populations=tuple(populations),
        mta=mta,
        queue=None,
        destinations=(),
        reputation={},
        operator=None,
    )
