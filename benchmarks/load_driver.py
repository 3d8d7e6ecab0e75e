"""The HTTP side of the load test: an async httpx driver, the questions it asks, and the figures it reports.

It runs in its own process (``python -m benchmarks.load_driver``, a plan as JSON on
stdin, figures as JSON on stdout), so that the client's own CPU time does not
compete for the server's interpreter lock and inflate the server's latency. It
imports nothing of the product: only httpx.

Every phase is bounded: workers stop issuing requests at the phase's end, each
request has a timeout, and the driver talks to loopback addresses only.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
WORDS = (
    "robot fleet warehouse battery charger firmware route picker shelf order invoice budget forecast "
    "safety sensor lidar incident customer contract renewal pricing discount quarter revenue margin "
    "hiring onboarding policy travel expense approval vendor payment audit compliance training shift"
).split()
# The realistic repeat mix: this share of requests asks one of the sample questions, popular ones
# more often (Zipf, s = 1: the most asked question is about a quarter of the repeats); the rest are new.
REPEAT_SHARE = 0.7
ZIPF_S = 1.0
REQUEST_TIMEOUT_S = 30.0


def distinct_question(stems: Sequence[str], phase: int, number: int) -> str:
    """A question no other phase or request of the run asks (the trailing tag makes it unique)."""
    stem = stems[number % len(stems)]
    first = WORDS[(number // len(stems)) % len(WORDS)]
    second = WORDS[(number * 7 + phase) % len(WORDS)]
    return f"{stem} {first} {second} {phase}-{number}"


def zipf_weights(count: int, s: float = ZIPF_S) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, count + 1)]


@dataclass(frozen=True, slots=True)
class Phase:
    """One bounded measurement: an endpoint, a question mix and a concurrency."""

    name: str
    path: str  # /v1/search or /v1/chat
    field: str  # the body field carrying the question
    mix: str  # "distinct" or "repeat_mix"
    concurrency: int
    warmup_s: float
    duration_s: float
    tag: int  # unique per phase in a run, so distinct questions never repeat across phases


@dataclass
class _Sample:
    started: float
    ended: float
    error: str | None


@dataclass
class Figures:
    """Throughput and latency of one phase; latencies of requests started after the warm-up."""

    samples: list[_Sample] = field(default_factory=list)

    def summary(self, warm_end: float) -> dict[str, Any]:
        measured = [s for s in self.samples if s.started >= warm_end]
        return summarize(
            [(s.ended - s.started) * 1000 for s in measured if s.error is None],
            errors=Counter(s.error for s in measured if s.error is not None),
            span_s=(max((s.ended for s in measured), default=warm_end) - warm_end),
        )


def summarize(latencies_ms: list[float], *, errors: Counter[str], span_s: float) -> dict[str, Any]:
    """qps counts successful requests only; a failed request is an error, never a fast answer."""
    ordered = sorted(latencies_ms)
    return {
        "requests": len(ordered) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "qps": round(len(ordered) / span_s, 1) if span_s > 0 else 0.0,
        "p50_ms": _percentile(ordered, 0.50),
        "p95_ms": _percentile(ordered, 0.95),
        "p99_ms": _percentile(ordered, 0.99),
        "mean_ms": round(sum(ordered) / len(ordered), 2) if ordered else None,
        "max_ms": round(ordered[-1], 2) if ordered else None,
    }


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks; None without data."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 2)


async def drive_phase(
    client: httpx.AsyncClient, phase: Phase, *, tokens: Sequence[str], stems: Sequence[str]
) -> dict[str, Any]:
    figures = Figures()
    weights = zipf_weights(len(stems))
    start = time.perf_counter()
    warm_end, stop = start + phase.warmup_s, start + phase.warmup_s + phase.duration_s

    async def worker(index: int) -> None:
        rng = random.Random(phase.tag * 1000 + index)
        number = index
        while (started := time.perf_counter()) < stop:
            if phase.mix == "repeat_mix" and rng.random() < REPEAT_SHARE:
                question = rng.choices(stems, weights)[0]
            else:
                question = distinct_question(stems, phase.tag, number)
            token = tokens[number % len(tokens)]  # every sample user in turn, each with its own token
            number += phase.concurrency
            error = await _post(client, phase, question, token)
            figures.samples.append(_Sample(started=started, ended=time.perf_counter(), error=error))

    await asyncio.gather(*(worker(i) for i in range(phase.concurrency)))
    return {"concurrency": phase.concurrency, "mix": phase.mix, **figures.summary(warm_end)}


async def _post(client: httpx.AsyncClient, phase: Phase, question: str, token: str) -> str | None:
    """None on success, else a short error kind (status code or exception name): never a body."""
    try:
        response = await client.post(
            phase.path, json={phase.field: question}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if response.status_code != 200:
        return f"http_{response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "invalid_json"
    expected = "results" if phase.path.endswith("/search") else "answer"
    return None if isinstance(body, dict) and expected in body else "unexpected_body"


async def drive(plan: dict[str, Any]) -> dict[str, Any]:
    """Runs ``plan['phases']`` one after the other against ``plan['base_url']`` (loopback only)."""
    base_url = str(plan["base_url"])
    if urlparse(base_url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"the load driver talks to loopback addresses only, not {base_url}")
    phases = [Phase(**raw) for raw in plan["phases"]]
    tokens, stems = list(plan["tokens"]), list(plan["stems"])
    connections = max(phase.concurrency for phase in phases)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        for phase in phases:
            results[phase.name] = await drive_phase(client, phase, tokens=tokens, stems=stems)
    return results


def main() -> None:
    plan = json.load(sys.stdin)  # tokens arrive on stdin, never on the command line (ps shows arguments)
    json.dump(asyncio.run(drive(plan)), sys.stdout)


if __name__ == "__main__":
    main()
