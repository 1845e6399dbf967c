"""The ``simsub`` command.  Exit status: 0 done, 2 bad input, 1 unexpected failure.

Each module of this package adds its subcommands (``add_commands(sub)`` returns
``{name: handler}``); this one builds the parser and maps errors to exit codes.
The CLI is the top layer: it may import anything, nothing imports it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .. import build
from ..version import __version__
from ..errors import ScenarioError
from ..experiments.execute import Interrupted
from . import calibrate, experiments, maillog, policyd, postfix, replay, run
from .options import ArgumentError, Parser

#: The modules that add subcommands, in the order ``simsub --help`` lists them.
COMMAND_MODULES = (run, experiments, postfix, policyd, maillog, calibrate, replay)

EPILOG = """examples (SCENARIO paths are relative to the project folder):
  simsub run                                   the built-in may-2012 scenario, its default policy
  simsub run --policy selective-1-5s           one of the scenario's policies
  simsub run scenarios/may-2012.toml --set populations.botnet.count=300 --horizon 16h
  simsub check scenarios/patient-bots.toml     validate a scenario and list its policies and parameters
  simsub compare                               every policy of the default scenario, 5 paired replications
  simsub compare --policies none,selective-1-5s --replications 10
  simsub sweep scenarios/patient-bots.toml --policy selective --vary foreign_sleep=0:10:1
  simsub tune scenarios/patient-bots.toml --policy selective --vary foreign_sleep=0:10:1 \\
      --require "spam.reduction>=0.95" --minimize legit.false_delay_rate.5s
  simsub export-postfix --policy selective-1-5s     the policy as main.cf/master.cf/pcre files
  simsub twin scenarios/twin-impatient.toml --set sleep=3   real Postfix vs the model (root)
"""


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The parser and the handler of each subcommand."""
    parser = Parser(prog="simsub", description="Simulate an ISP mail submission service (port 587) under attack "
                    "by bots with stolen passwords, and measure what tarpits and throttles cost and save.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"simsub {__version__} ({build.DESCRIPTION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    handlers = {}
    for module in COMMAND_MODULES:
        handlers.update(module.add_commands(sub))
    return parser, handlers


def _interrupt_once(signum, frame) -> None:
    """Ctrl-C (or SIGTERM): raise KeyboardInterrupt once and ignore every further one, so that stopping
    the workers and printing the message cannot be interrupted into a traceback or a hang."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _interrupt_once) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(parser, handlers, argv)
    finally:
        # Restored unless an interrupt came: then the process is on its way out and stays deaf to more.
        if previous and signal.getsignal(signal.SIGINT) is _interrupt_once:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _main(parser, handlers, argv: list[str] | None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args(argv)
        args.argv = argv
        if args.command is None:
            parser.print_help()
            return 2
        return handlers[args.command](args)
    except ArgumentError as exc:
        print(f"simsub: error: {exc} (try 'simsub --help')", file=sys.stderr)
        return 2
    except ScenarioError as exc:
        print(f"simsub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsimsub: interrupted; no result folder was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` or similar: stop quietly
        sys.stderr.close()
        return 1
    except Interrupted as exc:
        print(f"\nsimsub: interrupted; {exc.finished} of {exc.total} runs finished and are kept; run the same "
              "command again to compute only the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
