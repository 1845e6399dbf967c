"""``simsub export-postfix`` and ``simsub twin``: a policy as Postfix configuration, and the model
played against a private real Postfix."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import ScenarioError
from ..units import parse_duration
from .options import (command_line, load_scenario_from, non_negative_duration, positive_duration, positive_number,
                      scenario_arguments, whole_number)

EXPORT_DESCRIPTION = """\
Write the Postfix configuration of one policy: main.cf parameters (one per
restriction list), a master.cf submission entry whose -o overrides apply them to
port 587 only, and the pcre map files, each with comments.  A policy service
becomes a check_policy_service line and a note of what the daemon answering it
must decide.  --check runs `postfix check` on the files in a private instance
(needs root and the postfix and postfix-pcre packages)."""

TWIN_DESCRIPTION = """\
Play a small scenario against a real Postfix and in the model, and compare.
As root, starts a private Postfix on 127.0.0.1 (a free high port, the policy as
export-postfix writes it, XCLIENT from loopback, all mail discarded) in a
temporary folder; plays the scenario's clients in real time with an asyncio
SMTP client (each sets its name, address and login with XCLIENT; its round trip,
patience and hang-up or talk-early behaviour are the model's); runs the model
on the same clients and draws; prints and writes a side-by-side table.  Every
process it started is stopped and the folder removed, also on Ctrl-C or error.
Needs: apt-get install postfix postfix-pcre (see README)."""


def add_commands(sub) -> dict:
    export = sub.add_parser("export-postfix", help="write the Postfix configuration of a policy",
                            description=EXPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_arguments(export)
    export.add_argument("--policy", metavar="NAME", help="policy to export (default: the scenario's default_policy)")
    export.add_argument("--out", metavar="DIR", type=Path,
                        help="folder to write (default: results/postfix/SCENARIO-POLICY)")
    export.add_argument("--map-dir", metavar="PATH", default="/etc/postfix/simsub",
                        help="where the map files will live on the server (default /etc/postfix/simsub)")
    export.add_argument("--check", action="store_true",
                        help="verify the files with `postfix check` in a private instance (root, Postfix installed)")

    twin = sub.add_parser("twin", help="play a small scenario against a private real Postfix and in the model",
                          description=TWIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_arguments(twin)
    twin.add_argument("--policy", metavar="NAME", help="policy to play (default: the scenario's default_policy)")
    twin.add_argument("--duration", metavar="DUR", type=positive_duration,
                      help="real time to play, e.g. 60s (default: the scenario's horizon if at most 10 min, else 60s)")
    twin.add_argument("--scale", metavar="F", type=positive_number, default=1.0,
                      help="multiply populations, stolen accounts and the smtpd limit by F (default 1)")
    twin.add_argument("--start", metavar="DUR", type=non_negative_duration, default=0.0,
                      help="play the scenario from this time of day on, e.g. 12h when the bots arrive (default 0)")
    twin.add_argument("--seed", metavar="N", type=whole_number, help="root random seed (default: the scenario's seed)")
    twin.add_argument("--out", metavar="DIR", type=Path,
                      help="result folder (default: results/twin/SCENARIO-POLICY)")
    twin.add_argument("--keep", action="store_true", help="keep the private instance's folder (printed) for inspection")
    twin.add_argument("--quiet", action="store_true", help="no progress; print only the table and the folder")
    return {"export-postfix": command_export_postfix, "twin": command_twin}


def command_export_postfix(args) -> int:
    from ..experiments.design import slug
    from ..postfix.export import ExportError, export_policy
    from ..postfix.folder import EXPORT_MARKER, write_export

    scenario = load_scenario_from(args)
    policy = scenario.policy_named(args.policy)
    if not args.map_dir.startswith("/"):
        raise ScenarioError("--map-dir", args.map_dir, "must be an absolute path (Postfix reads maps by full path)")
    try:
        export = export_policy(scenario, policy, map_dir=args.map_dir.rstrip("/"))
    except ExportError as exc:
        raise ScenarioError(scenario.label or scenario.name, f"policies.{policy}.{exc.key}", str(exc)) from None
    if args.check:
        _require_postfix()
        from ..postfix.instance import PostfixError, PrivatePostfix
        try:
            with PrivatePostfix(scenario, policy, start=False):
                pass
        except PostfixError as exc:
            print(f"simsub: error: {exc}", file=sys.stderr)
            return 1
    out = args.out or Path("results") / "postfix" / f"{slug(scenario.name)}-{slug(policy)}"
    folder = write_export(export, out, _instructions(export, args.map_dir.rstrip("/"), command_line(args), args.check))
    print(export.main_cf)
    print(export.master_cf)
    if args.check:
        print("postfix check: no warnings (private instance)")
    for note in export.notes:
        print(f"note: {note}")
    print(f"exported: {folder} (see {EXPORT_MARKER})")
    return 0


def command_twin(args) -> int:
    from ..experiments.design import slug
    from ..files import check_output_target
    from ..twin.compare import format_table
    from ..twin.output import TWIN_MARKER, agreement_line, describe, write_twin
    from ..twin.run import default_duration, run_twin

    scenario = load_scenario_from(args)
    policy = scenario.policy_named(args.policy)
    _require_postfix()
    duration = parse_duration(args.duration) if args.duration is not None else default_duration(scenario)
    out = args.out or Path("results") / "twin" / f"{slug(scenario.name)}-{slug(policy)}"
    check_output_target(out, TWIN_MARKER)
    progress = None if args.quiet else _TwinProgress()
    if progress:
        print(f"twin: {scenario.name} / {policy}: starting a private Postfix; then {duration:g} s in real time "
              "(sessions in flight at the end are let finish)", file=sys.stderr)
    from ..postfix.export import ExportError
    from ..postfix.instance import PostfixError
    try:
        result = run_twin(scenario, policy, duration=duration, scale=args.scale, start=args.start, seed=args.seed,
                          progress=progress, keep=args.keep)
    except ExportError as exc:
        raise ScenarioError(scenario.label or scenario.name, f"policies.{policy}.{exc.key}", str(exc)) from None
    except PostfixError as exc:
        print(f"\nsimsub: error: {exc}", file=sys.stderr)
        return 1
    if progress:
        progress.done()
    folder = write_twin(result, out, command_line(args))
    for line in describe(result):
        print(line)
    print()
    print(format_table(result.rows))
    print()
    print(agreement_line(result))
    for note in result.notes:
        print(f"note: {note}")
    print(f"results: {folder}")
    return 0


# ---------------------------------------------------------------- helpers
class _TwinProgress:
    """Real time played and sessions so far, on one stderr line (terminal only)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()

    def __call__(self, now: float, horizon: float, sessions: int) -> None:
        if not self.tty:
            return
        state = f"{min(now, horizon):.0f}/{horizon:.0f} s played" if now <= horizon else \
            f"{horizon:.0f} s played, {now - horizon:.0f} s finishing sessions in flight"
        print(f"\rtwin: {state}, {sessions} sessions done   ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _require_postfix() -> None:
    from ..postfix.instance import unavailable_reason
    from ..twin.monitor import sock_diag_available

    reason = unavailable_reason()
    if reason is None and not sock_diag_available():
        reason = "the kernel's sock_diag interface (NETLINK_SOCK_DIAG) is not available; the twin needs Linux"
    if reason:
        raise ScenarioError("postfix", None, reason)


def _instructions(export, map_dir: str, command: str, checked: bool) -> str:
    lines = [
        f"simsub export of policy {export.policy!r} ({command})",
        "",
        "To deploy (as root, on the submission server):",
        f"  1. mkdir -p {map_dir} && cp maps/*.pcre {map_dir}/" if export.maps else
        "  1. (this policy uses no maps)",
        "  2. append main.cf to /etc/postfix/main.cf (check mynetworks: it is the scenario's own network)",
        "  3. replace the submission entry of /etc/postfix/master.cf with master.cf (add your TLS settings,",
        "     e.g. -o smtpd_tls_security_level=encrypt)",
        "  4. postfix check && postfix reload   (pcre maps need no postmap; smtpd reads them when it starts)",
    ]
    if export.daemon:
        lines += ["  5. the policy server, before the reload: pip install 'simsub[policyd]'; mkdir -p /etc/simsub &&",
                  "     cp policyd/*.toml /etc/simsub/; cp policyd/simsub-policyd.service /etc/systemd/system/ &&",
                  "     systemctl enable --now simsub-policyd  (log-only at first: see the unit's comments, docs/policyd.md)"]
    lines += [
        "",
        "Checked with `postfix check` in a private instance." if checked else
        "Not checked here: run `simsub export-postfix --check ...` as root with Postfix installed.",
    ]
    if export.notes:
        lines += ["", "Postfix cannot do alone:"] + [f"  - {note}" for note in export.notes]
    return "\n".join(lines) + "\n"
