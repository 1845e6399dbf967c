"""The folder of ``simsub replay``: the comparison report, the replay scenario, and
account by account what each policy would have done to the logged mail."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..experiments.replay import Replay, write_scenario
from ..files import atomic_folder
from .experiment_folder import write_experiment

#: The file that marks a folder as a replay (an --out holding it may be replaced).
REPLAY_MARKER = "replay.json"
#: Logins listed per policy in accounts.md (all of them are in accounts.csv).
LISTED = 15


def accounts_markdown(replay: Replay) -> str:
    """Per policy: the legitimate senders it would have delayed or refused, and how much of the
    flagged accounts' mail it would have stopped."""
    trace = replay.trace
    lines = ["# What each policy would have done to the logged mail, login by login",
             "",
             f"Replayed: {len(trace.users):,} legitimate and {len(trace.bots):,} flagged submissions "
             f"(scenario `{replay.scenario.name}`, seed {replay.experiment.seeds[0]}).  A message counts as "
             "delayed when its false delay (time to the final 250 beyond the same dialogue with no policy "
             "delay and a free smtpd) exceeds 5 s; never accepted means deferred past its retries, rejected, "
             "timed out or locked out.  Every login is in `accounts.csv`.", ""]
    for policy, table in replay.accounts.groupby("policy", sort=False):
        legit = table[table["kind"] == "legit"]
        flagged = table[table["kind"] == "flagged"]
        hurt = legit[(legit["delayed_5s"] > 0) | (legit["never_accepted"] > 0)]
        lines += [f"## `{policy}`", ""]
        if legit.empty:
            lines.append("No legitimate mail in the log.")
        elif hurt.empty:
            lines.append(f"No legitimate sender of the {len(legit):,} in the log would have been delayed more "
                         "than 5 s or refused.")
        else:
            lines += [f"{len(hurt):,} of {len(legit):,} legitimate senders would have been delayed more than 5 s "
                      f"or refused ({int(hurt['never_accepted'].sum()):,} messages never accepted):", "",
                      "| login | messages | recipients | delayed > 5 s | never accepted | why | worst false delay |",
                      "|---|---:|---:|---:|---:|---|---:|"]
            for _, row in hurt.head(LISTED).iterrows():
                worst = "—" if not math.isfinite(row["max_false_delay_s"]) else f"{row['max_false_delay_s']:.1f} s"
                lines.append(f"| `{row['account']}` | {row['messages']:,} | {row['recipients']:,} | "
                             f"{row['delayed_5s']:,} | {row['never_accepted']:,} | {row['why_not'] or '—'} | {worst} |")
            if len(hurt) > LISTED:
                lines.append(f"| … {len(hurt) - LISTED:,} more in accounts.csv | | | | | | |")
        lines.append("")
        if not flagged.empty:
            total = int(flagged["recipients"].sum())
            accepted = int(flagged["recipients_accepted"].sum())
            lines += [f"Flagged accounts: {total - accepted:,} of {total:,} logged recipients stopped "
                      f"({(total - accepted) / total:.1%})." if total else "Flagged accounts: no recipients.", "",
                      "| flagged login | messages | recipients | accepted | stopped |", "|---|---:|---:|---:|---:|"]
            for _, row in flagged.head(LISTED).iterrows():
                share = "—" if not math.isfinite(row["stopped_share"]) else f"{row['stopped_share']:.0%}"
                lines.append(f"| `{row['account']}` | {row['messages']:,} | {row['recipients']:,} | "
                             f"{row['recipients_accepted']:,} | {share} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def write_replay(replay: Replay, data: dict, target: Path, command: str | None = None) -> Path:
    """Write ``replay`` to ``target`` (atomically): ``compare/`` (the paired comparison and its
    report), ``scenario.toml`` (the replay scenario ``data``), ``accounts.csv`` and
    ``accounts.md``, and ``replay.json``."""
    with atomic_folder(Path(target), marker=REPLAY_MARKER) as folder:
        write_experiment(replay.experiment, folder / "compare")
        write_scenario(data, folder / "scenario.toml")
        replay.accounts.to_csv(folder / "accounts.csv", index=False, float_format="%.6g")
        (folder / "accounts.md").write_text(accounts_markdown(replay), encoding="utf-8")
        record = {"scenario": replay.scenario.name, "trace": str(replay.scenario.trace.tables),
                  "trace_sha256": replay.scenario.trace.digest, "flagged": sorted(replay.scenario.trace.flagged),
                  "legit_submissions": len(replay.trace.users), "flagged_submissions": len(replay.trace.bots),
                  "skipped": replay.trace.skipped, "policies": list(replay.experiment.policies),
                  "seeds": list(replay.experiment.seeds), "command": command}
        (folder / REPLAY_MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Path(target)


def hurt_counts(accounts: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per policy: (legitimate logins delayed > 5 s or refused, legitimate logins)."""
    out = {}
    for policy, table in accounts.groupby("policy", sort=False):
        legit = table[table["kind"] == "legit"]
        out[policy] = (int(((legit["delayed_5s"] > 0) | (legit["never_accepted"] > 0)).sum()), len(legit))
    return out
