"""Clients as the server sees them, and the stolen-account pool the bots share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    verdicts: dict | None = None  # cached verdicts of cacheable stages (made when first needed)


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


class AccountNames(Sequence):
    """The logins of populations' users (``name0``, ``name1``, …) in order, made
    when asked for: a million-user scenario need not hold a million strings."""

    def __init__(self, populations: list[tuple[str, int]]):
        """``populations``: (name, user count) pairs."""
        self._populations = populations
        self._length = sum(count for _, count in populations)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, i: int) -> str:  # type: ignore[override]  # integers only, no slices
        if not isinstance(i, int):
            raise TypeError("AccountNames takes integer indices only")
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(i)
        for name, count in self._populations:
            if i < count:
                return f"{name}{i}"
            i -= count
        raise AssertionError("unreachable: i < len(self)")
