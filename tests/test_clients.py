"""Clients as ClientPopulation builds them: the per-client lists and the integer
address arithmetic give exactly what the numpy arrays and ``Origin.address_for`` do."""

from __future__ import annotations

import ipaddress

import pytest

import simsub
from simsub.distributions import Constant
from simsub.scenario.types import Origin
from simsub.workload.rng import Streams
from simsub.workload.synthetic import ClientPopulation, _address, _ipv4_range


def origin(network: str) -> Origin:
    return Origin("o", "h{n}.example", Constant(0.01), False, ipaddress.ip_network(network))


@pytest.mark.parametrize("network", ["192.0.2.0/24", "10.0.0.0/8", "203.0.113.64/30", "198.51.100.7/32",
                                     "0.0.0.0/30", "255.255.255.252/30", "2001:db8::/120"])
def test_address_matches_address_for(network):
    o = origin(network)
    size = o.network.num_addresses
    # Both ends of the range, its middle, and numbers past it (addresses wrap around).
    for k in sorted({0, 1, size // 2, size - 1, size, size + 1, 3 * size + 2, 70_000}):
        assert _address(o, _ipv4_range(o), k) == o.address_for(k), (network, k)


def test_ipv6_falls_back_to_address_for():
    assert _ipv4_range(origin("2001:db8::/64")) is None


def test_clients_carry_the_drawn_values():
    """Every client of the default scenario's populations holds its drawn attributes."""
    scenario = simsub.load_scenario(None)
    numbering: dict[int, int] = {}
    for index, population in enumerate(scenario.populations):
        drawn = ClientPopulation(scenario, index, population, Streams(scenario.seed), numbering)
        origins = list(scenario.origins.values())
        for n in range(0, population.count, max(1, population.count // 500)):
            client = drawn.client(n)
            o = origins[int(drawn.origin_of[n])]
            k = int(drawn.number_in_origin[n])
            assert (client.population, client.number, client.origin) == (index, n, int(drawn.origin_of[n]))
            assert (client.hostname, client.address, client.mynetworks) == (o.hostname_for(k), o.address_for(k),
                                                                            o.mynetworks)
            assert client.half_rtt == float(drawn.rtt[n]) / 2
            assert client.patience == float(drawn.patience[n])
            assert client.connect_timeout == float(drawn.connect_timeout[n])
            assert client.talks == (population.on_timeout == "talk")
            assert client.sasl_username == f"{population.name}{n}"
            assert drawn.client(n) is client  # made once
