"""Clients as the server sees them, and the stolen-account pool the bots share."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Client:
    """One mail client or bot: identity, network distance and temper."""

    population: int  # index of its population
    number: int  # client number within the population ({n} in hostnames)
    origin: int  # index of its origin
    hostname: str  # reverse DNS name, "unknown" without a PTR record
    address: str
    mynetworks: bool
    half_rtt: float  # s, one-way network delay
    patience: float  # s, longest wait for one reply
    connect_timeout: float  # s, longest wait for the banner
    talks: bool  # on timeout: True = send the next command anyway, False = hang up
    sasl_username: str = ""  # its own login (users); bots use stolen ones
    verdicts: dict = field(default_factory=dict)  # cached verdicts of cacheable stages


class AccountPool:
    """Stolen credentials shared by a botnet.

    Bots pick uniformly among the accounts not yet known to be dead; an account
    that fails AUTH is dropped for all bots (the botnet's controller learns).
    """

    def __init__(self, names: list[str]):
        self._alive = list(names)
        self._index = {name: i for i, name in enumerate(self._alive)}

    def __len__(self) -> int:
        return len(self._alive)

    def pick(self, u: float) -> str | None:
        """The account for uniform draw ``u`` in [0, 1), or None if none are left."""
        if not self._alive:
            return None
        return self._alive[int(u * len(self._alive))]

    def drop(self, name: str) -> None:
        i = self._index.pop(name, None)
        if i is None:
            return
        last = self._alive.pop()
        if i < len(self._alive):
            self._alive[i] = last
            self._index[last] = i
