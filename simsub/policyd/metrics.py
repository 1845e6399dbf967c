"""Prometheus metrics of the daemon (text format, the maintained ``prometheus_client`` library).

=========================================  =====================================================
metric                                     meaning
=========================================  =====================================================
``simsub_policyd_decisions_total``         answers by ``service``, ``action`` (first word:
                                           DUNNO, DEFER, REJECT, HOLD) and ``mode``
                                           (``enforce``, or ``log_only``: what it would have sent)
``simsub_policyd_requests_total``          requests by ``result``: ``ok``, ``unreadable``,
                                           ``error`` (internal error, answered DUNNO),
                                           ``over_budget`` (answered DUNNO)
``simsub_policyd_request_seconds``         time from a request's last line to its answer (histogram)
``simsub_policyd_connections``             open client connections
``simsub_policyd_keys``                    keys (logins, addresses) each service holds counters for
``simsub_policyd_messages_remembered``     messages whose per-message decision is remembered
``simsub_policyd_state_saves_total``       state files written; ``..._last_save_timestamp_seconds``
=========================================  =====================================================

Each server has its own registry (tests run several in one process).  The
exporter is a thread; counters are updated from the event loop and read there
by ``prometheus_client``'s own locking.
"""

from __future__ import annotations

from typing import Callable

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # optional: only --metrics needs it
    CollectorRegistry = None

#: Latency buckets in seconds: a policy answer should take well under a millisecond.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def available() -> bool:
    return CollectorRegistry is not None


def keys_in_use(service) -> int:
    """How many keys a service holds counters for (best effort, any limiter).

    A service or its counter may say so itself (``keys_in_use()``); otherwise the
    size of the per-key table the limiters of :mod:`simsub.policy.ratelimit` keep."""
    for obj in (service, getattr(service, "counter", None)):
        if obj is None:
            continue
        method = getattr(obj, "keys_in_use", None)
        if callable(method):
            return int(method())
        for attribute in ("_state", "_events", "seen"):
            table = getattr(obj, attribute, None)
            if isinstance(table, dict):
                return len(table)
    return 0


class Metrics:
    """The daemon's metrics; ``snapshot`` gives the live services and the memo size on scrape."""

    def __init__(self, snapshot: Callable[[], tuple[dict, int]]):
        if CollectorRegistry is None:
            raise RuntimeError("the Prometheus client library is missing: pip install prometheus_client")
        self.registry = registry = CollectorRegistry()
        self.decisions = Counter("simsub_policyd_decisions", "Answers by service, action and mode",
                                 ["service", "action", "mode"], registry=registry)
        self.requests = Counter("simsub_policyd_requests", "Requests by result", ["result"], registry=registry)
        self.latency = Histogram("simsub_policyd_request_seconds", "Time from a request to its answer (s)",
                                 buckets=BUCKETS, registry=registry)
        self.connections = Gauge("simsub_policyd_connections", "Open client connections", registry=registry)
        self.saves = Counter("simsub_policyd_state_saves", "State files written", registry=registry)
        self.last_save = Gauge("simsub_policyd_last_save_timestamp_seconds", "When the state was last written",
                               registry=registry)
        registry.register(_Live(snapshot))
        self._server = None

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP exporter on host:port (0: any free port); the port it listens on."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def text(self) -> str:
        return generate_latest(self.registry).decode()


class _Live:
    """Gauges computed at scrape time from the live services."""

    def __init__(self, snapshot):
        self.snapshot = snapshot

    def collect(self):
        services, remembered = self.snapshot()
        keys = GaugeMetricFamily("simsub_policyd_keys", "Keys each service holds counters for", labels=["service"])
        for name, service in list(services.items()):
            keys.add_metric([name], keys_in_use(service))
        yield keys
        yield GaugeMetricFamily("simsub_policyd_messages_remembered",
                                "Messages whose per-message decision is remembered", value=remembered)


def record(metrics, result: str, decision, seconds: float) -> None:
    """Count one answered request (``metrics`` may be None: metrics off)."""
    if metrics is None:
        return
    metrics.requests.labels(result).inc()
    metrics.latency.observe(seconds)
    if decision is None:
        return
    metrics.decisions.labels(decision.service, decision.action.split()[0], "enforce").inc()
    for service, action in decision.log_only:
        metrics.decisions.labels(service, action.split()[0], "log_only").inc()
