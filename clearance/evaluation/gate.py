"""The regression gate: a new report against a committed baseline, within committed tolerances.

Tolerances are a TOML file of checks, each naming one metric by its path in the
report's ``metrics`` (``overall.resolved_safely``; ``*`` stands for every key at
that level, e.g. ``personas.*.resolved_safely``)::

    [[check]]
    metric = "overall.leaked_chunks"
    at_most = 0            # an absolute bound, whatever the baseline says

    [[check]]
    metric = "overall.resolved_safely"
    better = "higher"      # or "lower"
    tolerance = 0.0        # how far it may move the wrong way from the baseline

A check fails when the metric is missing from the new report, has no value
where the baseline had one, breaks a bound, or moves the wrong way by more than
its tolerance. A baseline measured on another set, or on another number of
items, fails the gate too: the numbers would not be comparable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

# A float comparison must not fail on the last bit of a mean recomputed the same way.
EPSILON = 1e-9


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True, slots=True)
class Check:
    metric: str
    better: Better = Better.HIGHER
    tolerance: float | None = None
    at_most: float | None = None
    at_least: float | None = None


def load_tolerances(path: Path) -> list[Check]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read tolerances {path}: {exc}") from exc
    checks = []
    for number, raw in enumerate(data.get("check", []), start=1):
        unknown = set(raw) - {"metric", "better", "tolerance", "at_most", "at_least"}
        if unknown or not isinstance(raw.get("metric"), str):
            raise ValueError(f"{path}: check {number} needs a metric and knows no {sorted(unknown)}")
        checks.append(
            Check(
                metric=raw["metric"],
                better=Better(raw.get("better", "higher")),
                tolerance=_number(raw.get("tolerance")),
                at_most=_number(raw.get("at_most")),
                at_least=_number(raw.get("at_least")),
            )
        )
    if not checks:
        raise ValueError(f"{path} holds no [[check]]: a gate that checks nothing cannot fail")
    return checks


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def regressions(report: dict[str, Any], baseline: dict[str, Any], checks: list[Check]) -> list[str]:
    """Every way ``report`` is worse than ``baseline`` beyond ``checks``; empty when it passes."""
    found: list[str] = []
    for key in ("kind", "name", "items"):
        if report["set"].get(key) != baseline["set"].get(key):
            found.append(
                f"set {key}: the baseline has {baseline['set'].get(key)!r}, this report {report['set'].get(key)!r} "
                "(re-measure the baseline on the same set)"
            )
    if found:
        return found
    for check in checks:
        paths = _expand(report["metrics"], check.metric) | _expand(baseline["metrics"], check.metric)
        if not paths:
            found.append(f"{check.metric}: no such metric in the report or the baseline")
        for path in sorted(paths):
            found += _judge(check, path, _lookup(report["metrics"], path), _lookup(baseline["metrics"], path))
    return found


def _judge(check: Check, path: str, new: Any, old: Any) -> list[str]:
    if new is _MISSING:
        return [f"{path}: missing from the report"]
    if new is None:
        return [f"{path}: no value, the baseline had {old}"] if old not in (None, _MISSING) else []
    if isinstance(new, bool) or not isinstance(new, int | float):
        return [f"{path}: {new!r} is not a number"]
    problems = []
    if check.at_most is not None and new > check.at_most + EPSILON:
        problems.append(f"{path}: {new} is above the limit {check.at_most}")
    if check.at_least is not None and new < check.at_least - EPSILON:
        problems.append(f"{path}: {new} is below the limit {check.at_least}")
    if check.tolerance is not None and old not in (None, _MISSING):
        if isinstance(old, bool) or not isinstance(old, int | float):
            return [*problems, f"{path}: the baseline holds {old!r}, not a number"]
        worse = (old - new) if check.better is Better.HIGHER else (new - old)
        if worse > check.tolerance + EPSILON:
            direction = "fell" if check.better is Better.HIGHER else "rose"
            problems.append(f"{path}: {direction} from {old} to {new} (tolerance {check.tolerance})")
    return problems


_MISSING = object()


def _lookup(metrics: dict[str, Any], path: str) -> Any:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _expand(metrics: dict[str, Any], pattern: str) -> set[str]:
    """Concrete paths matching ``pattern`` (``*`` is one level, any key); metric names hold no dots."""
    paths = {""}
    parts = pattern.split(".")
    for depth, part in enumerate(parts):
        following = set()
        for prefix in paths:
            node = _lookup(metrics, prefix) if prefix else metrics
            if not isinstance(node, dict):
                continue
            keys = list(node) if part == "*" else [part] if part in node else []
            last = depth == len(parts) - 1
            following |= {f"{prefix}.{key}" if prefix else key for key in keys if last or isinstance(node[key], dict)}
        paths = following
    return paths
