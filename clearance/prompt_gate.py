"""The evaluation gate of a prompt activation: the persona set answered with the candidate version.

The candidate answers every question of the sample company's persona set, as
every sample user, through the product's own path with the configured generator
(``clearance eval``'s runner, on a throw-away index and store), and the report is
held against the committed baseline within the committed tolerances. A version
is refused when anything leaks, an item errors, or a gated metric regresses.

What the gate can see depends on the generator. The extractive generator reads
no prompt: its answers are the same whatever the version says, so with it the
gate only shows that answering still meets the baseline, never an effect of the
prompt; the verdict says so. Gate a prompt with the generator it is for, against
a baseline measured with that generator (a baseline of another generator kind is
a refusal, not a comparison).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearance.evaluation.gate import load_tolerances, regressions
from clearance.evaluation.options import QueryCache
from clearance.settings import REPO_ROOT, GeneratorKind, Mode, Settings
from index.ports import Embedder
from retrieval.prompt_template import PromptTemplate
from retrieval.prompts import FixedPrompt

DEFAULT_BASELINE = REPO_ROOT / "evaluation" / "baseline.json"
DEFAULT_TOLERANCES = REPO_ROOT / "evaluation" / "tolerances.toml"
EXTRACTIVE_NOTE = (
    "the configured generator is extractive and reads no prompt: this run cannot show any effect of {id}; "
    "it shows only that answering still meets the baseline. Gate prompt changes with the generator they are for"
)


@dataclass(frozen=True, slots=True)
class GateVerdict:
    candidate: str
    regressions: tuple[str, ...]
    summary: dict[str, Any]  # chained into the audit in clear: numbers and names of metrics, no people
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.regressions


def gate_settings(settings: Settings) -> Settings:
    """The operator's settings for the throw-away run: development tokens for the sample users only.

    The run never touches the operator's index, store or tenants (the runner moves
    data, index and store into a scratch folder); the sample tenants must be
    accepted there, whatever the operator's own allow-list says.
    """
    auth = settings.auth.model_copy(update={"allowed_tenants": []})
    return settings.model_copy(update={"mode": Mode.DEVELOPMENT, "auth": auth})


def run_prompt_gate(
    settings: Settings,
    candidate: PromptTemplate,
    *,
    baseline: Path = DEFAULT_BASELINE,
    tolerances: Path = DEFAULT_TOLERANCES,
    questions: Path | None = None,
    personas: list[str] | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GateVerdict:
    """Answers the persona set with ``candidate`` and judges the report; ValueError when it cannot run."""
    from clearance.evaluation.personas import QUESTIONS_FILE, load_personas
    from clearance.evaluation.report import build_report
    from clearance.evaluation.runner import run_set

    checks = load_tolerances(tolerances)
    try:
        old: dict[str, Any] = json.loads(baseline.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the baseline {baseline}: {exc}") from exc
    eval_set = load_personas(questions or QUESTIONS_FILE, personas=personas)
    # What makes the comparison meaningless is known before the run, which may take hours with a model.
    problems = comparable(old, set_name=eval_set.name, items=len(eval_set.items), generator=settings.generator.kind)
    if problems:
        summary = {
            "candidate": candidate.id,
            "digest": candidate.digest,
            "run": "not run",
            "regressions": len(problems),
        }
        return GateVerdict(candidate=candidate.id, regressions=tuple(problems), summary=summary)
    started = time.perf_counter()
    result = run_set(
        eval_set,
        gate_settings(settings),
        embedder=embedder,
        progress=progress,
        # Quality only: the query-embedding cache changes timings, never answers.
        query_cache=QueryCache.AS_CONFIGURED,
        prompts=FixedPrompt(candidate),
    )
    report = build_report(result, duration_s=time.perf_counter() - started)
    return judge(report, old, checks=checks, candidate=candidate, generator=settings.generator.kind)


def comparable(
    baseline: dict[str, Any], *, generator: GeneratorKind, set_name: str | None = None, items: int | None = None
) -> list[str]:
    """Why ``baseline`` cannot judge a run of ``items`` items of ``set_name`` with ``generator``; empty when it can."""
    problems = []
    measured_with = baseline.get("run", {}).get("generator_settings", {}).get("kind")
    if measured_with != generator.value:
        problems.append(
            f"the baseline was measured with the {measured_with} generator, this run uses {generator.value}: "
            "measure a baseline with this generator first (clearance eval --save-baseline FILE) and pass it"
        )
    measured_on = baseline.get("set", {})
    if set_name is not None and (measured_on.get("name"), measured_on.get("items")) != (set_name, items):
        problems.append(
            f"the baseline was measured on {measured_on.get('items')} items of {measured_on.get('name')!r}, "
            f"this run would ask {items} of {set_name!r}: the numbers would not be comparable"
        )
    return problems


def judge(
    report: dict[str, Any],
    baseline: dict[str, Any],
    *,
    checks: Any,
    candidate: PromptTemplate,
    generator: GeneratorKind,
) -> GateVerdict:
    """The verdict on ``report``: the gate's regressions, plus the checks that make the comparison honest."""
    found = list(regressions(report, baseline, checks))
    found += [p for p in comparable(baseline, generator=generator) if p not in found]
    used = report.get("run", {}).get("prompts", [])
    if used != [candidate.id]:
        found.append(f"the run answered with {used}, not only with {candidate.id}")
    overall = report["metrics"]["overall"]
    summary = {
        "candidate": candidate.id,
        "digest": candidate.digest,
        "generator": report.get("run", {}).get("generator", ""),
        "items": overall.get("items"),
        "resolved_safely": overall.get("resolved_safely"),
        "baseline_resolved_safely": baseline.get("metrics", {}).get("overall", {}).get("resolved_safely"),
        "leaked_chunks": overall.get("leaked_chunks"),
        "errors": overall.get("errors"),
        "regressions": len(found),
        "prompt_visible_to_generator": generator is not GeneratorKind.EXTRACTIVE,
    }
    note = EXTRACTIVE_NOTE.format(id=candidate.id) if generator is GeneratorKind.EXTRACTIVE else ""
    return GateVerdict(candidate=candidate.id, regressions=tuple(found), summary=summary, note=note)
