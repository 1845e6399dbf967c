"""The synthetic workload: who the clients are and what they want to send.

Every draw comes from a named random stream (:mod:`simsub.workload.rng`), so it
is the same under every policy (common random numbers) and can be made again
without running the model: the real-time twin player and the maillog writer
draw the very same clients, arrivals and bot sessions as a run does.

* :class:`ClientPopulation` — each client's origin, round trip, patience,
  hostname and address (stream ``clients/NAME``);
* :func:`user_arrivals` — every legitimate message: time (s), client, recipients
  (stream ``arrivals/NAME``), and :func:`recipient_destinations` — where each
  recipient goes;
* :func:`stolen_accounts`, :func:`bot_first_start`, :func:`next_bot_message` —
  a bot worker's campaign, session by session (stream ``bot/NAME/b/w``).
"""

from __future__ import annotations

from array import array

import numpy as np

from ..scenario.types import Origin, Population, Scenario
from .clients import AccountPool, Client
from .rng import Streams, random01


class ClientPopulation:
    """Per-client attributes of one population, drawn once, clients built lazily."""

    def __init__(self, scenario: Scenario, index: int, population: Population, streams: Streams,
                 numbering: dict[int, int] | None = None):
        """``numbering``: per origin, how many clients earlier populations already
        took from it; a client's number in its origin gives its address and the
        ``{n}`` of its hostname, so no two clients share them unless the origin's
        address range is smaller than its clients (then addresses wrap around)."""
        self.index = index
        self.population = population
        origins = list(scenario.origins.values())
        self.origins = origins
        self.origin_codes = [list(scenario.origins).index(name) for name in population.origins]
        rng = streams.get("clients", population.name)
        n = population.count
        shares = np.array(list(population.origins.values()))
        which = rng.choice(len(shares), size=n, p=shares / shares.sum())
        origin_of = np.array(self.origin_codes)[which]
        rtts = np.stack([np.broadcast_to(o.rtt.sample(rng, n), (n,)) for o in origins])
        rtt = rtts[origin_of, np.arange(n)]
        patience = np.broadcast_to(population.patience.sample(rng, n), (n,)).astype(float)
        if population.connect_timeout is None:
            connect_timeout = patience
        else:
            connect_timeout = np.broadcast_to(population.connect_timeout.sample(rng, n), (n,)).astype(float)
        numbering = {} if numbering is None else numbering
        number_in_origin = np.zeros(n, dtype=np.int64)
        for code in np.unique(origin_of):
            mine = np.flatnonzero(origin_of == code)
            start = numbering.get(int(code), 0)
            number_in_origin[mine] = start + np.arange(len(mine))
            numbering[int(code)] = start + len(mine)
        # Per client: origin index, round trip (s), patience (s), connect timeout (s),
        # number within its origin.  Held as array.array, as compact as the numpy arrays
        # they come from (8 bytes a client each), because indexing one gives a plain
        # float or int: building a client costs no numpy scalar per attribute.
        self.origin_of = _ints(origin_of)
        self.rtt = _floats(rtt)
        self.patience = _floats(patience)
        self.connect_timeout = self.patience if connect_timeout is patience else _floats(connect_timeout)
        self.number_in_origin = _ints(number_in_origin)
        self._talks = population.on_timeout == "talk"
        self._name = population.name
        self._ranges = [_ipv4_range(o) for o in origins]
        self._clients: dict[int, Client] = {}

    def client(self, n: int) -> Client:
        client = self._clients.get(n)
        if client is None:
            code = self.origin_of[n]
            origin = self.origins[code]
            k = self.number_in_origin[n]
            client = Client(self.index, n, code, origin.hostname_for(k),
                            _address(origin, self._ranges[code], k),
                            origin.mynetworks, self.rtt[n] / 2, self.patience[n], self.connect_timeout[n],
                            self._talks, f"{self._name}{n}")
            self._clients[n] = client
        return client


def _floats(values: np.ndarray) -> array[float]:
    """A numpy array's values as an ``array.array`` of doubles (the same numbers)."""
    return array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


def _ints(values: np.ndarray) -> array[int]:
    """A numpy integer array's values as an ``array.array`` of 64-bit integers."""
    return array("q", np.ascontiguousarray(values, dtype=np.int64).tobytes())


def _ipv4_range(origin: Origin) -> tuple[int, int] | None:
    """(first address as an integer, number of addresses) of an IPv4 origin; None for IPv6."""
    network = origin.network
    if network.version != 4:
        return None
    return int(network.network_address), network.num_addresses


def _address(origin: Origin, ipv4: tuple[int, int] | None, k: int) -> str:
    """``origin.address_for(k)``: the same string, for IPv4 from integer arithmetic
    (``ipv4`` from :func:`_ipv4_range`) without an ``ipaddress`` object per client."""
    if ipv4 is None:
        return origin.address_for(k)
    a = ipv4[0] + k % ipv4[1]
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


def client_populations(scenario: Scenario, streams: Streams) -> dict[str, ClientPopulation]:
    """Every population's clients, by population name, numbered across populations
    so that two clients of one origin never share an address or hostname."""
    numbering: dict[int, int] = {}
    return {p.name: ClientPopulation(scenario, i, p, streams, numbering) for i, p in enumerate(scenario.populations)}


def user_arrivals(population: Population, horizon: float, rng: np.random.Generator):
    """Poisson message arrivals over [0, horizon): times (s), client numbers, recipients.

    The rate is ``count × messages_per_day / 86400`` per second, shaped by the
    24 hourly ``diurnal`` weights (mean 1) when given.
    """
    rate = population.count * population.messages_per_day / 86400.0
    edges = np.arange(0.0, horizon, 3600.0)
    widths = np.minimum(edges + 3600.0, horizon) - edges
    weights = np.ones(len(edges))
    if population.diurnal is not None:
        weights = np.array([population.diurnal[int(e // 3600) % 24] for e in edges])
    counts = rng.poisson(rate * widths * weights)
    times = np.concatenate([e + w * rng.random(c) for e, w, c in zip(edges, widths, counts)]) if len(edges) else np.empty(0)
    times.sort()
    clients = rng.integers(0, population.count, size=len(times))
    recipients = np.broadcast_to(population.recipients.sample(rng, len(times)), (len(times),)).astype(np.int64)
    return times, clients, recipients


def recipient_destinations(recipients: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per message, how many of its recipients go to each destination (rows sum to ``recipients``).

    Drawn for all messages at once, after the arrivals, so that every policy
    sends each legitimate recipient to the same destination."""
    destination = rng.choice(len(shares), size=int(recipients.sum()), p=shares / shares.sum())
    counts = np.zeros((len(recipients), len(shares)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(recipients)), recipients), destination), 1)
    return counts


def stolen_accounts(population: Population) -> list[str]:
    """The logins a bot population holds: its victims' (``accounts_from``) or its own."""
    if population.accounts_from is not None:
        return [f"{population.accounts_from}{k}" for k in range(population.accounts)]
    return [f"{population.name}-stolen{k}" for k in range(population.accounts)]


def bot_first_start(population: Population, rng: np.random.Generator) -> float:
    """When one bot worker starts its campaign (s): ``start`` plus a uniform share of ``ramp``."""
    return population.start + population.ramp * random01(rng)


def next_bot_message(population: Population, accounts: AccountPool,
                     rng: np.random.Generator) -> tuple[str, int, float] | None:
    """A bot worker's draws for its next session: (account, recipients, pause in s),
    or None when every stolen account is dead.  Shared with the real-time twin
    player (:mod:`simsub.twin.player`) so both play the same sessions."""
    account = accounts.pick(random01(rng))
    if account is None:
        return None
    return account, int(population.recipients.sample(rng)), float(population.pause.sample(rng))
