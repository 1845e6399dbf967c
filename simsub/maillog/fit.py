"""Distributions fitted to logged quantities: pure functions of arrays.

* :func:`volume_classes` — messages per account as a mixture of Poisson
  volume classes, fitted to the *zero-truncated* counts (an account that sent
  nothing is not in the log).
* :func:`empirical_counts`, :func:`empirical_durations` — the scenario's
  ``empirical`` distributions from samples.
* :func:`diurnal_profile` — 24 hourly weights (mean 1) with the log's
  exposure of each hour taken into account.
* :func:`effective_rtt` — the round trip that makes the model's session last
  as long as the logged one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp

#: Smallest expected messages per account over the log that a volume class
#: may have: bounds the accounts a class may claim that the log never saw
#: (a zero-truncated Poisson with rate r implies 1/(1 - e^-r) accounts per seen one).
MIN_CLASS_RATE = 0.05


@dataclass(frozen=True)
class VolumeClass:
    """One Poisson class: ``accounts`` clients each sending ``rate`` messages over the log on average.

    ``accounts`` includes the estimated clients of the class that sent
    nothing in the log (``seen`` is how many did)."""

    accounts: float
    rate: float
    seen: float


@dataclass(frozen=True)
class VolumeFit:
    classes: tuple[VolumeClass, ...]
    log_likelihood: float
    bic: float
    tried: tuple[tuple[int, float], ...]  # (classes, BIC) of every model tried


def _poisson_logpmf(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return k[:, None] * np.log(lam)[None, :] - lam[None, :] - gammaln(k + 1)[:, None]


def _fit_mixture(values: np.ndarray, weights: np.ndarray, k: int, iterations: int = 2000,
                 tolerance: float = 1e-10) -> tuple[np.ndarray, np.ndarray, float, float]:
    """EM for a ``k``-class Poisson mixture observed only where the count is >= 1.

    The unseen zeros are the missing data: each step adds the expected number
    of accounts that sent nothing, ``n P0 / (1 - P0)``, to the classes in
    proportion to ``w_k e^-rate_k``.  Returns (class shares among all accounts,
    rates, the zero-truncated log likelihood, the estimated unseen accounts).
    """
    n = weights.sum()
    quantiles = (np.arange(k) + 0.5) / k
    rates = np.maximum(np.quantile(np.repeat(values, weights.astype(int)), quantiles), MIN_CLASS_RATE)
    rates = rates * (1 + 1e-3 * np.arange(k))  # distinct starting points even for tied quantiles
    shares = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        log_joint = _poisson_logpmf(values, rates) + np.log(shares)[None, :]
        log_mix = logsumexp(log_joint, axis=1)
        p0 = float(np.sum(shares * np.exp(-rates)))
        ll = float(np.sum(weights * (log_mix - math.log1p(-min(p0, 1 - 1e-15)))))
        resp = np.exp(log_joint - log_mix[:, None]) * weights[:, None]
        unseen = n * p0 / (1 - p0)
        zero_resp = shares * np.exp(-rates) / p0 * unseen if p0 > 0 else np.zeros(k)
        mass = resp.sum(axis=0) + zero_resp
        shares = np.maximum(mass / mass.sum(), 1e-300)
        rates = np.maximum((resp * values[:, None]).sum(axis=0) / np.maximum(mass, 1e-300), MIN_CLASS_RATE)
        if ll - previous < tolerance * max(1.0, abs(ll)):
            break
        previous = ll
    p0 = float(np.sum(shares * np.exp(-rates)))
    return shares, rates, ll, n * p0 / (1 - p0)


def volume_classes(counts, max_classes: int = 4) -> VolumeFit:
    """Fit 1..``max_classes`` Poisson classes to per-account message counts (all >= 1); keep the lowest BIC.

    With homogeneous users (one Poisson rate, as simsub simulates a
    population) one class wins and its ``accounts`` estimates the clients
    including those that sent nothing.  Heavy-tailed real logs get several
    classes (light, regular, heavy senders); a class whose share is below one
    account is dropped.
    """
    counts = np.asarray(counts, dtype=int)
    if counts.size == 0 or counts.min() < 1:
        raise ValueError("volume_classes needs at least one count, all >= 1")
    values, weights = np.unique(counts, return_counts=True)
    values, weights = values.astype(float), weights.astype(float)
    n = float(counts.size)
    best, tried = None, []
    for k in range(1, max(1, max_classes) + 1):
        if k > len(values):
            break
        shares, rates, ll, unseen = _fit_mixture(values, weights, k)
        bic = -2 * ll + (2 * k - 1) * math.log(n)
        tried.append((k, bic))
        if best is None or bic < best[3] - 1e-9:
            best = (shares, rates, ll, bic, unseen)
    shares, rates, ll, bic, unseen = best
    total = n + unseen
    order = np.argsort(rates)
    classes = []
    for i in order:
        accounts = shares[i] * total
        if accounts < 0.5:
            continue
        classes.append(VolumeClass(accounts=float(accounts), rate=float(rates[i]),
                                   seen=float(accounts * (1 - math.exp(-rates[i])))))
    return VolumeFit(tuple(classes), ll, bic, tuple(tried))


def empirical_counts(values, max_points: int = 60) -> list[tuple[int, float]]:
    """Points ``[x, F(x)]`` of a count ``empirical`` distribution of ``values`` (whole numbers >= 1).

    Every distinct value is kept when there are at most ``max_points``;
    otherwise the ``max_points // 2`` most frequent values stay exact and the
    rest are grouped into quantile bins, each written at its mean rounded, so
    the mean moves by less than half a recipient per grouped message.
    """
    values = np.asarray(values, dtype=int)
    values = np.clip(values, 1, None)
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) > max_points:
        keep = set(distinct[np.argsort(-counts, kind="stable")[: max_points // 2]].tolist())
        rest = np.sort(values[~np.isin(values, list(keep))])
        bins = np.array_split(rest, max_points - len(keep))
        grouped = [int(round(b.mean())) for b in bins if len(b)]
        mapped = {}
        for b, x in zip([b for b in bins if len(b)], grouped):
            for v in np.unique(b):
                mapped[int(v)] = x
        values = np.array([v if v in keep else mapped[v] for v in values.tolist()])
        distinct, counts = np.unique(values, return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    points = [(int(x), round(float(f), 6)) for x, f in zip(distinct, cdf)]
    points[-1] = (points[-1][0], 1.0)
    return _strictly_rising(points)


def empirical_durations(values, points: int = 21, atoms: int = 20, step: float = 0.01) -> list[tuple[float, float]]:
    """Points ``[x, F(x)]`` of a duration ``empirical`` distribution of ``values`` (seconds).

    Values are rounded to ``step`` seconds.  With at most ``atoms`` distinct
    values (a bot's fixed pause seen through whole-second stamps: 9, 10, 11 s)
    each keeps its probability: a point ``step / 10`` below each value carries
    the previous F, so the interpolated mass sits that close to the value.  Otherwise ``points``
    evenly spaced quantiles (a continuous spread).  A constant sample gives one
    point at F = 1."""
    digits = max(0, round(-math.log10(step)))
    values = np.round(np.clip(np.asarray(values, dtype=float), 0, None), digits)
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= atoms:
        cdf = np.cumsum(counts) / counts.sum()
        out = [(float(distinct[0]), float(cdf[0]))]
        for x, f, f_before in zip(distinct[1:], cdf[1:], cdf[:-1]):
            out += [(round(float(x) - step / 10, digits + 1), float(f_before)), (float(x), float(f))]
    else:
        # evenly spaced quantiles, and two in the upper tail so a rare long value stays rare
        probs = np.union1d(np.linspace(0, 1, points), [0.99, 0.999])
        out = []
        for x, f in zip(np.round(np.quantile(values, probs), digits), probs):
            if out and x <= out[-1][0]:
                out[-1] = (out[-1][0], float(f))  # equal quantiles: one point with the larger F
            else:
                out.append((float(x), float(f)))
    out[-1] = (out[-1][0], 1.0)
    return [(x, round(f, 6)) for x, f in out]


def _strictly_rising(points):
    out = []
    for x, f in points:
        if out and f <= out[-1][1]:
            continue  # rounding merged two steps: keep the first x
        out.append((x, f))
    out[-1] = (out[-1][0], 1.0)
    return out


def hour_exposure(t0_local_s: float, horizon_s: float) -> np.ndarray:
    """Seconds of [t0, t0 + horizon) that fall in each local hour of day 0..23."""
    exposure = np.zeros(24)
    t, end = t0_local_s, t0_local_s + horizon_s
    while t < end:
        hour_end = (math.floor(t / 3600) + 1) * 3600
        step = min(hour_end, end) - t
        exposure[int(math.floor(t / 3600)) % 24] += step
        t += step
    return exposure


def diurnal_profile(local_s, t0_local_s: float, horizon_s: float) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Hourly weights (mean 1 over hours the log covers) of events at local times ``local_s``.

    Each hour's rate is its count divided by how long the log covers that hour
    of day; an hour the log never covers gets the mean weight 1.  Returns
    (weights, counts, exposure in seconds)."""
    local_s = np.asarray(local_s, dtype=float)
    local_s = local_s[(local_s >= t0_local_s) & (local_s < t0_local_s + horizon_s)]
    counts = np.bincount((np.floor(local_s / 3600) % 24).astype(int), minlength=24).astype(float)
    exposure = hour_exposure(t0_local_s, horizon_s)
    covered = exposure > 0
    rate = np.where(covered, counts / np.where(covered, exposure, 1), np.nan)
    mean = np.nanmean(rate) if covered.any() and np.nansum(rate) > 0 else 1.0
    weights = np.where(covered, rate / mean if mean > 0 else 1.0, 1.0)
    return [round(float(w), 3) for w in weights], counts, exposure


def effective_rtt(durations, recipients, reply_time: float = 0.002) -> np.ndarray:
    """Per-session round trips (s) that give simsub sessions the logged durations.

    A simsub session without sleeps lasts from smtpd's accept to its handling
    of QUIT ``(6 + n) × rtt + (7 + n) × reply_time`` for ``n`` recipients
    (banner, EHLO, AUTH, MAIL, n RCPT, DATA, end of data, QUIT), so
    ``rtt = (duration − (7 + n) reply_time) / (6 + n)``.  TLS handshakes,
    think time and message transfer of a real client are folded in: the value
    is an effective round trip, not a ping time.  Clipped at 0.
    """
    d = np.asarray(durations, dtype=float)
    n = np.asarray(recipients, dtype=float)
    return np.clip((d - (7 + n) * reply_time) / (6 + n), 0, None)
