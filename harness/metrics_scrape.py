"""Scraping the processes' ``/metrics`` and ``/readyz``, and the figures derived from them.

:func:`scrape_all` fetches every endpoint concurrently (a down endpoint is a result, not an
exception); :class:`SystemView` keeps the last two scrapes of each endpoint and answers the
questions a dashboard asks: a counter's rate between the scrapes (counter resets handled, as
Prometheus's ``rate`` does), a sum over replicas and labels, a breakdown by one label, and a
histogram quantile (interpolated within buckets like PromQL's ``histogram_quantile``) over
the observations made between the two scrapes.

Examples
--------
>>> view = SystemView()
>>> page = '# TYPE x_total counter\\nx_total{reason="a"} 3\\nx_total{reason="b"} 1\\n'
>>> view.update([Scrape.from_text("streams", "http://w1", page, at=10.0)])
>>> view.total("streams", "x_total"), view.rate("streams", "x_total")   # no rate after one scrape
(4.0, None)
>>> page = '# TYPE x_total counter\\nx_total{reason="a"} 13\\nx_total{reason="b"} 1\\n'
>>> view.update([Scrape.from_text("streams", "http://w1", page, at=12.0)])
>>> view.rate("streams", "x_total"), view.rate_by_label("streams", "x_total", "reason")
(5.0, {'a': 5.0, 'b': 0.0})
"""
from __future__ import annotations

import asyncio
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Scrape:
    """One endpoint's answer at one moment: up or not, ready or not, and its samples."""

    role: str
    url: str
    up: bool
    at: float = field(default_factory=time.monotonic)
    samples: Samples = field(default_factory=dict)
    ready: bool | None = None
    reasons: list[str] = field(default_factory=list)
    error: str = ""

    @classmethod
    def from_text(cls, role: str, url: str, text: str, at: float | None = None, **kw) -> "Scrape":
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
        return cls(role, url, True, time.monotonic() if at is None else at, samples, **kw)


async def scrape_one(session: aiohttp.ClientSession, role: str, url: str, timeout: float) -> Scrape:
    base = url.rstrip("/")
    to = aiohttp.ClientTimeout(total=timeout)
    try:
        async with session.get(f"{base}/metrics", timeout=to) as resp:
            if resp.status != 200:
                return Scrape(role, url, False, error=f"/metrics answered HTTP {resp.status}")
            text = await resp.text()
        result = Scrape.from_text(role, url, text)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        return Scrape(role, url, False, error=_short_error(exc))
    try:
        async with session.get(f"{base}/readyz", timeout=to) as resp:
            body = await resp.json(content_type=None)
            result.ready = resp.status == 200
            result.reasons = [str(r) for r in body.get("reasons", [])] if isinstance(body, dict) else []
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        result.reasons = [f"/readyz: {_short_error(exc)}"]
    return result


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


async def expand_dns(url: str) -> list[str]:
    """One URL per address the host resolves to (Docker DNS: one per service replica)."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return [url]  # unresolvable: scrape it anyway so it shows as down
    addresses = sorted({info[4][0] for info in infos})
    out = []
    for address in addresses:
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        out.append(urlunsplit(parts._replace(netloc=netloc)))
    return out or [url]


async def scrape_all(targets: Iterable[tuple[str, str]], timeout: float = 2.0,
                     resolve: bool = False) -> list[Scrape]:
    """Scrape every ``(role, url)`` concurrently; with ``resolve`` expand hosts to all addresses."""
    targets = list(targets)
    if resolve:
        expanded = await asyncio.gather(*(expand_dns(url) for _, url in targets))
        targets = [(role, u) for (role, _), urls in zip(targets, expanded) for u in urls]
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(scrape_one(session, r, u, timeout) for r, u in targets)))


def _matches(labels: dict[str, str], where: dict[str, str] | None) -> bool:
    return not where or all(labels.get(k) == v for k, v in where.items())


class SystemView:
    """The last two scrapes of every endpoint, and the figures computed from them."""

    def __init__(self):
        # keyed by (role, url): one URL may be given for two roles
        self.current: dict[tuple[str, str], Scrape] = {}
        self.previous: dict[tuple[str, str], Scrape] = {}

    def update(self, scrapes: Iterable[Scrape]) -> None:
        seen = set()
        for s in scrapes:
            key = (s.role, s.url)
            seen.add(key)
            old = self.current.get(key)
            if old is not None and old.up:
                self.previous[key] = old
            if not s.up:
                self.previous.pop(key, None)  # a restart resets counters: rates start afresh
            self.current[key] = s
        for key in list(self.current):
            if key not in seen:  # a replica that went away
                self.current.pop(key)
                self.previous.pop(key, None)

    def endpoints(self, role: str | None = None) -> list[Scrape]:
        return [s for s in self.current.values() if role is None or s.role == role]

    def names(self, role: str) -> list[str]:
        return sorted({n for s in self.endpoints(role) if s.up for n in s.samples})

    def find(self, role: str, *patterns: str, skip: tuple[str, ...] = ()) -> str | None:
        """The first sample name of ``role`` that contains every word of a pattern, in order of patterns.

        A pattern is words separated by spaces, matched against the name without its
        ``streamrec_<role>_`` prefix; so the view survives small renames of metrics. Names
        holding a word of ``skip`` are passed over (the per-arm twins of the overall figures).
        """
        prefix = f"streamrec_{role}_"
        names = [n for n in self.names(role) if n.startswith(prefix) and not any(w in n for w in skip)]
        for pattern in patterns:
            words = pattern.split()
            for name in names:
                if all(w in name[len(prefix):] for w in words):
                    return name
        return None

    # --- values -------------------------------------------------------------------------
    def total(self, role: str, name: str | None, where: dict[str, str] | None = None) -> float | None:
        """Sum of a sample over every up endpoint of ``role`` and every label set."""
        if name is None:
            return None
        values = [v for s in self.endpoints(role) if s.up
                  for labels, v in s.samples.get(name, ()) if _matches(labels, where)]
        return float(sum(values)) if values else None

    def maximum(self, role: str, name: str | None) -> float | None:
        if name is None:
            return None
        values = [v for s in self.endpoints(role) if s.up for _, v in s.samples.get(name, ())]
        return max(values) if values else None

    def by_label(self, role: str, name: str | None, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.endpoints(role):
            for labels, v in (s.samples.get(name, ()) if s.up and name else ()):
                key = labels.get(label, "")
                out[key] = out.get(key, 0.0) + v
        return dict(sorted(out.items()))

    def by_labels(self, role: str, name: str | None, labels: tuple[str, ...]) -> dict[tuple[str, ...], list[float]]:
        """Every up endpoint's values of ``name``, grouped by the values of ``labels`` (one per replica)."""
        out: dict[tuple[str, ...], list[float]] = {}
        for s in self.endpoints(role):
            for sample_labels, v in (s.samples.get(name, ()) if s.up and name else ()):
                out.setdefault(tuple(sample_labels.get(k, "") for k in labels), []).append(v)
        return dict(sorted(out.items()))

    def _deltas(self, role: str, name: str, where: dict[str, str] | None):
        """Per endpoint and label set: (labels, increase, seconds) between the last two scrapes."""
        for s in self.endpoints(role):
            prev = self.previous.get((s.role, s.url))
            if not s.up or prev is None or s.at <= prev.at:
                continue
            before = {tuple(sorted(labels.items())): v for labels, v in prev.samples.get(name, ())}
            for labels, v in s.samples.get(name, ()):
                if not _matches(labels, where):
                    continue
                old = before.get(tuple(sorted(labels.items())), 0.0)
                yield labels, (v - old if v >= old else v), s.at - prev.at  # v < old: counter reset

    def rate(self, role: str, name: str | None, where: dict[str, str] | None = None) -> float | None:
        """Per-second increase between the last two scrapes, summed over endpoints and labels."""
        if name is None:
            return None
        rates = [increase / seconds for _, increase, seconds in self._deltas(role, name, where)]
        return float(sum(rates)) if rates else None

    def rate_by_label(self, role: str, name: str | None, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, increase, seconds in (self._deltas(role, name, None) if name else ()):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + increase / seconds
        return dict(sorted(out.items()))

    def quantile(self, role: str, histogram: str | None, q: float,
                 where: dict[str, str] | None = None) -> float | None:
        """``q``-quantile of a histogram over the last interval (all time if nothing new)."""
        if histogram is None:
            return None
        bucket = histogram + "_bucket"
        recent: dict[float, float] = {}
        for labels, increase, _ in self._deltas(role, bucket, where):
            le = float(labels["le"])
            recent[le] = recent.get(le, 0.0) + increase
        if not recent or max(recent.values()) <= 0:
            recent = {}
            for s in self.endpoints(role):
                for labels, v in (s.samples.get(bucket, ()) if s.up else ()):
                    if _matches({k: x for k, x in labels.items() if k != "le"}, where):
                        le = float(labels["le"])
                        recent[le] = recent.get(le, 0.0) + v
        return histogram_quantile(q, recent)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Quantile from cumulative bucket counts ``{upper bound: count}``, like PromQL's.

    Linear interpolation inside the bucket holding the rank; the lower bound of the first
    bucket is 0; a rank in the ``+Inf`` bucket answers the largest finite bound.

    >>> round(histogram_quantile(0.5, {0.1: 10, 0.2: 30, float("inf"): 40}), 6)
    0.15
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
