"""A policy server on its own event loop in a thread of the calling process.

For tests and for ``simsub twin`` (a daemon beside its private Postfix, on a free
port): ``with ServerThread(PolicyServer(Config(listen="127.0.0.1:0"), load)) as s:``
then ``s.address``.
"""

from __future__ import annotations

import asyncio
import threading

from .server import PolicyServer


class ServerThread:
    """``with ServerThread(server) as s:`` — the server on its own event loop in a thread.

    For tests and for the twin: no signal handlers (only the main thread may set
    them); leaving the block shuts it down like SIGTERM (state saved)."""

    def __init__(self, server: PolicyServer, timeout: float = 10.0):
        self.server = server
        self.timeout = timeout
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="simsub-policyd", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.server.run(signals=False))
        except BaseException as exc:  # reported to the caller by __enter__
            self.error = exc
            self.server.ready.set()

    def __enter__(self) -> PolicyServer:
        self._thread.start()
        if not self.server.ready.wait(self.timeout):
            raise RuntimeError("the policy server did not start in time")
        if self.error is not None:
            raise self.error
        return self.server

    def call(self, fn, *args):
        """Run ``fn(*args)`` in the server's loop and wait for it (e.g. ``server.reload``)."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["value"] = fn(*args)
            finally:
                done.set()
        self.server._loop.call_soon_threadsafe(run)
        done.wait(self.timeout)
        return box.get("value")

    def __exit__(self, *_exc) -> None:
        if self.server._loop is not None and self.server._stop is not None:
            self.server._loop.call_soon_threadsafe(self.server.request_stop, "end of block")
        self._thread.join(self.timeout)
