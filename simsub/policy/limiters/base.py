"""What every rate-limit counter offers: a decision, a snapshot, and forgetting.

A counter answers one question: may ``key`` spend ``units`` more at time ``t``
(seconds, any origin: the model's clock or the wall clock) without going over
``limit``?  ``limit`` may be given per call (a per-key override, such as a list
owner's higher limit); the counter remembers it for that key so that
:meth:`Counter.expire` and :meth:`Counter.state` know each key's own limit.

For a long-running policy daemon every counter also offers

* :meth:`Counter.state` / :meth:`Counter.load_state`: a JSON-serialisable
  snapshot and its restoration (counters also pickle as plain objects);
* :meth:`Counter.expire`: drop the keys whose state at ``now`` is the state of a
  key never seen, so memory stays bounded by the keys active recently.  Dropping
  changes no later decision provided no later request is earlier than ``now``.
"""

from __future__ import annotations

from typing import Any


class StateError(ValueError):
    """A snapshot that does not belong to this counter (another algorithm or parameters)."""


class Counter:
    """Base class: subclasses keep per-key state in ``self._state`` (key -> tuple of floats)."""

    algorithm = ""  # the scenario's ``algorithm`` name

    def __init__(self, limit: float, window: float):
        self.limit = limit
        self.window = window
        self._state: dict[str, tuple] = {}
        self._limits: dict[str, float] = {}  # keys whose limit differs from ``limit``

    # ----------------------------------------------------------------- decisions
    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        """True (and the units are counted as the algorithm says) when ``key`` may spend ``units`` at ``t``."""
        raise NotImplementedError

    def limit_of(self, key: str) -> float:
        return self._limits.get(key, self.limit)

    def _note_limit(self, key: str, limit: float | None) -> float:
        """The limit that applies to ``key`` now; remembered when it is an override."""
        if limit is None:
            return self._limits.get(key, self.limit)
        if limit != self.limit:
            self._limits[key] = limit
        elif self._limits:
            self._limits.pop(key, None)
        return limit

    # ----------------------------------------------------------------- memory
    def __len__(self) -> int:
        """Keys held in memory."""
        return len(self._state)

    def is_fresh(self, key: str, now: float) -> bool:
        """Whether ``key``'s state at ``now`` decides every later request as an unseen key would."""
        raise NotImplementedError

    def expire(self, now: float) -> int:
        """Drop keys that are fresh again at ``now`` (s); returns how many were dropped."""
        stale = [key for key in self._state if self.is_fresh(key, now)]
        for key in stale:
            self._drop(key)
        return len(stale)

    def _drop(self, key: str) -> None:
        del self._state[key]
        self._limits.pop(key, None)

    # ----------------------------------------------------------------- snapshots
    def params(self) -> dict[str, Any]:
        """The parameters a snapshot is only valid for."""
        return {"limit": self.limit, "window": self.window}

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of every key's counters."""
        return {"algorithm": self.algorithm, "params": self.params(), "keys": self._dump_keys(),
                "limits": dict(self._limits)}

    def load_state(self, snapshot: dict[str, Any]) -> None:
        """Replace all counters by ``snapshot`` (from :meth:`state` of a counter with equal parameters)."""
        if snapshot.get("algorithm") != self.algorithm:
            raise StateError(f"snapshot of algorithm {snapshot.get('algorithm')!r}, not {self.algorithm!r}")
        if snapshot.get("params") != self.params():
            raise StateError(f"snapshot parameters {snapshot.get('params')} differ from {self.params()}")
        self._load_keys(snapshot["keys"])
        self._limits = {str(key): float(value) for key, value in snapshot.get("limits", {}).items()}

    def _dump_keys(self) -> dict[str, Any]:
        return {key: list(value) for key, value in self._state.items()}

    def _load_keys(self, keys: dict[str, Any]) -> None:
        self._state = {str(key): tuple(float(v) for v in value) for key, value in keys.items()}
