"""Write a twin run's folder (atomically) and an export folder."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from ..version import __version__
from .compare import format_table
from .chart import occupancy_chart
from ..model.outcomes import Outcome, Step
from ..model.recorder import Recorder
from ..files import atomic_folder
from ..postfix.folder import write_export_files
from .run import TwinResult

#: The file that marks a folder as a twin result (an --out holding it may be replaced).
TWIN_MARKER = "twin.json"
#: The file that marks a folder as an export (never main.cf: --out /etc/postfix must not be replaced).


def postfix_version() -> str:
    try:
        done = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def describe(result: TwinResult) -> list[str]:
    """The facts a reader of the table needs, one line each."""
    scenario = result.scenario
    kinds = ", ".join(f"{p.count} {p.name} ({p.kind})" for p in scenario.populations)
    return [
        f"scenario {scenario.name}, policy {result.policy}, seed {result.seed}: {kinds}; "
        f"{scenario.horizon:g} s played; smtpd process limit {scenario.mta.process_limit}",
        f"Postfix {postfix_version()} on 127.0.0.1; smtpd time per reply measured "
        f"{result.reply_time * 1000:.3f} ms (the model's mta.reply_time); wall time {result.wall_s:.0f} s",
        f"largest drift between the same bot session's start on both sides: {_seconds(result.drift_s)}",
    ]


def agreement_line(result: TwinResult) -> str:
    disagree = [row["label"] for row in result.rows if not row["agrees"]]
    if not disagree:
        return f"Postfix and the model agree on all {len(result.rows)} metrics (counts exactly, times within 10 % or 0.2 s)."
    return f"Postfix and the model DISAGREE on: {', '.join(disagree)}."


def write_twin(result: TwinResult, target: Path, command: str) -> Path:
    """Write table.md, table.csv, twin.json, sessions.csv, messages.csv, occupancy.png,
    maillog and the exported configuration to ``target``."""
    with atomic_folder(target, marker=TWIN_MARKER) as folder:
        header = [f"# simsub twin: {result.scenario.name} / {result.policy}", ""]
        header += [f"- {line}" for line in describe(result)]
        header += [f"- command: `{command}`", "", format_table(result.rows, markdown=True), "",
                   agreement_line(result), ""]
        header += [f"- {note}" for note in result.notes]
        (folder / "table.md").write_text("\n".join(header).rstrip() + "\n")
        with open(folder / "table.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]))
            writer.writeheader()
            writer.writerows(result.rows)
        record = {
            "scenario": result.scenario.name, "policy": result.policy, "seed": result.seed,
            "duration_s": result.scenario.horizon, "process_limit": result.scenario.mta.process_limit,
            "reply_time_s": result.reply_time, "drift_s": _plain(result.drift_s), "wall_s": result.wall_s,
            "agrees": result.agrees, "postfix": _plain_dict(result.real_metrics),
            "model": _plain_dict(result.model_metrics), "postfix_version": postfix_version(),
            "simsub": __version__, "command": command, "notes": result.notes,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (folder / TWIN_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        _write_sessions(folder / "sessions.csv", result)
        _write_messages(folder / "messages.csv", result)
        occupancy_chart(result.real, result.model, result.scenario.mta.process_limit,
                        f"{result.scenario.name} / {result.policy}: smtpd processes, Postfix vs model",
                        folder / "occupancy.png")
        (folder / "maillog").write_text(result.maillog)
        if result.export is not None:
            write_export_files(folder / "postfix", result.export)
    return Path(target)


def _write_sessions(path: Path, result: TwinResult) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["side", "population", "arrival_s", "outcome", "slot_wait_s", "slot_hold_s"])
        for side, recorder in (("postfix", result.real), ("model", result.model)):
            s = recorder.sessions
            for pop, arrival, outcome, wait, hold in zip(s["population"], s["arrival_s"], s["outcome"],
                                                         s["slot_wait_s"], s["slot_hold_s"]):
                writer.writerow([side, recorder.populations[pop], f"{arrival:.4f}", Outcome(outcome).name.lower(),
                                 f"{wait:.4f}", f"{hold:.4f}"])


def _write_messages(path: Path, result: TwinResult) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["side", "population", "client", "account", "recipients", "first_attempt_s", "end_s",
                         "accepted_s", "attempts", "outcome", "step", "false_delay_s"])
        for side, recorder in (("postfix", result.real), ("model", result.model)):
            _message_rows(writer, side, recorder)


def _message_rows(writer, side: str, recorder: Recorder) -> None:
    m = recorder.messages
    for i in range(len(m["message_id"])):
        accepted = m["accepted_s"][i]
        delay = accepted - m["first_attempt_s"][i] - m["ideal_s"][i]
        writer.writerow([side, recorder.populations[m["population"][i]], m["client"][i],
                         recorder.accounts[m["account"][i]], m["recipients"][i], f"{m['first_attempt_s'][i]:.4f}",
                         f"{m['end_s'][i]:.4f}", "" if math.isnan(accepted) else f"{accepted:.4f}",
                         m["attempts"][i], Outcome(m["outcome"][i]).name.lower(), Step(m["step"][i]).name.lower(),
                         "" if math.isnan(delay) else f"{max(delay, 0.0):.4f}"])


def _seconds(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f} s"


def _plain(x: float):
    return None if isinstance(x, float) and math.isnan(x) else x


def _plain_dict(d: dict) -> dict:
    return {k: _plain(v) for k, v in d.items()}
