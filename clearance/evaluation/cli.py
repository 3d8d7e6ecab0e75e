"""``clearance eval``: run an evaluation set, write the report, compare with a baseline.

Registered by ``clearance/cli.py``; importing this module loads nothing heavy
(the runtime, the embedder and the loaders are imported when the command runs).
Exit status: 0 when the run (and the gate, with ``--baseline``) passes, 1 when
the gate finds a regression, 2 when the command cannot run as asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from clearance.evaluation.options import QueryCache
from clearance.settings import REPO_ROOT, Mode, Settings

if TYPE_CHECKING:
    from clearance.evaluation.items import EvalSet
    from clearance.evaluation.judge import Judge

DEFAULT_TOLERANCES = REPO_ROOT / "evaluation" / "tolerances.toml"
console = Console(soft_wrap=True)


def evaluate(
    beir: Annotated[
        Path | None, typer.Option("--beir", help="a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/)")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="the qrels split of --beir")] = "test",
    clapnq: Annotated[
        Path | None, typer.Option("--clapnq", help="a ClapNQ folder (answerable.jsonl, unanswerable.jsonl)")
    ] = None,
    questions: Annotated[
        Path | None, typer.Option("--questions", help="persona set (default: samples/questions.json)")
    ] = None,
    persona: Annotated[
        list[str] | None, typer.Option("--persona", help="only this sample user (repeatable; persona set only)")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="only the first N questions (ClapNQ: of each file)")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            help="persona set: N questions spread evenly over the file, asked by every user (a stratified subset "
            "for a slow generator)",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="the JSON report; Markdown and plots go beside it (default: <data dir>/eval/)"),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="a report to compare with; a regression exits 1")
    ] = None,
    tolerances: Annotated[Path, typer.Option("--tolerances", help="the checks --baseline applies")] = (
        DEFAULT_TOLERANCES
    ),
    save_baseline: Annotated[
        Path | None,
        typer.Option("--save-baseline", help="also write this run's metrics, without items, as a baseline file"),
    ] = None,
    query_cache: Annotated[
        QueryCache,
        typer.Option(
            "--query-cache",
            help="off: every embed timing is a real embedding; as-configured: the product's cache "
            "(faster, same answers)",
        ),
    ] = QueryCache.OFF,
    judge_model: Annotated[
        str | None,
        typer.Option(
            "--judge-model",
            help="grade answers with this model through the OpenAI-compatible endpoint of the generator "
            "settings (CLEARANCE_GENERATOR__BASE_URL, CLEARANCE_GENERATOR__API_KEY)",
        ),
    ] = None,
) -> None:
    """Evaluate answer quality and safety through the API's own path; with --baseline, gate on regressions.

    Without --beir or --clapnq it asks every question of the sample company's
    persona set as every sample user. Generator, retrieval and embedding come from
    the usual CLEARANCE_* settings; the index is a throw-away one of the configured
    kind, so nothing is written to the operator's data.
    """
    from clearance.evaluation.gate import load_tolerances, regressions
    from clearance.evaluation.report import build_report, write_report
    from clearance.evaluation.runner import run_set

    if beir and clapnq:
        raise _fail("give --beir or --clapnq, not both")
    if sample is not None and (beir or clapnq):
        raise _fail("--sample is for the persona set; --beir and --clapnq take --limit")
    settings = _settings()
    checks = None
    old: dict[str, Any] | None = None
    try:
        if baseline is not None:
            checks = load_tolerances(tolerances)
            old = json.loads(baseline.read_text(encoding="utf-8"))
        eval_set = _load(
            beir=beir, split=split, clapnq=clapnq, questions=questions, personas=persona, limit=limit, sample=sample
        )
        judge = _judge(settings, judge_model)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(f"[bold]{eval_set.name}[/bold]: {len(eval_set.items)} items from {eval_set.source}")
    started = time.perf_counter()
    try:
        result = run_set(eval_set, settings, judge=judge, progress=_progress(), query_cache=query_cache)
    except (ValueError, RuntimeError) as exc:
        raise _fail(str(exc)) from exc
    report = build_report(result, duration_s=time.perf_counter() - started)
    for path in write_report(report, out or settings.data_dir / "eval" / f"{eval_set.kind.value}.json"):
        console.print(f"wrote {path}")
    if save_baseline is not None:
        save_baseline.parent.mkdir(parents=True, exist_ok=True)
        summary = {key: value for key, value in report.items() if key != "items"}
        save_baseline.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote the baseline {save_baseline}")
    _print_summary(report)
    if old is not None and checks is not None:
        found = regressions(report, old, checks)
        if found:
            console.print(f"[red]regressions against {baseline}:[/red]")
            for line in found:
                console.print(f"  {line}", markup=False, highlight=False)
            raise typer.Exit(code=1)
        console.print(f"[green]no regression against {baseline}[/green]")


def _settings() -> Settings:
    """The operator's settings in development mode (evaluation mints development tokens), unless set otherwise."""
    try:
        settings = Settings()
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}") from None
    if "mode" not in settings.model_fields_set:
        settings = settings.model_copy(update={"mode": Mode.DEVELOPMENT})
    if settings.mode is not Mode.DEVELOPMENT:
        raise _fail(f"`clearance eval` runs in development mode only (CLEARANCE_MODE is {settings.mode.value})")
    return settings


def _load(
    *,
    beir: Path | None,
    split: str,
    clapnq: Path | None,
    questions: Path | None,
    personas: list[str] | None,
    limit: int | None,
    sample: int | None = None,
) -> EvalSet:
    if beir is not None:
        from clearance.evaluation.beir import load_beir

        return load_beir(beir, split=split, limit=limit)
    if clapnq is not None:
        from clearance.evaluation.clapnq import load_clapnq

        return load_clapnq(clapnq, limit=limit)
    from clearance.evaluation.personas import QUESTIONS_FILE, load_personas

    return load_personas(questions or QUESTIONS_FILE, limit=limit, personas=personas or None, sample=sample)


def _judge(settings: Settings, model: str | None) -> Judge | None:
    if not model:
        return None
    from clearance.evaluation.judge import OpenAICompatibleJudge

    config = settings.generator
    return OpenAICompatibleJudge(
        base_url=config.base_url, api_key=config.api_key, model=model, timeout_seconds=config.timeout_seconds
    )


def _progress() -> Any:
    from rich.progress import Progress

    if not console.is_terminal:  # a log file gets a line per tenth of the run instead of a bar
        started = time.perf_counter()

        def line(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                console.print(f"asked {done} of {total} ({time.perf_counter() - started:.0f} s)", highlight=False)

        return line
    progress = Progress(console=console, transient=True)
    task = progress.add_task("asking", total=None)

    def update(done: int, total: int) -> None:
        if done == 1:
            progress.start()
        progress.update(task, completed=done, total=total)
        if done == total:
            progress.stop()

    return update


def _print_summary(report: dict[str, Any]) -> None:
    overall = report["metrics"]["overall"]
    shown = {k: v for k, v in overall.items() if k != "latency_ms" and v is not None}
    console.print(", ".join(f"{k} {v}" for k, v in shown.items()), highlight=False)
    personas = report["metrics"]["personas"]
    if len(personas) > 1 and overall.get("resolved_safely") is not None:
        console.print(
            "resolved safely by persona: " + ", ".join(f"{n} {m['resolved_safely']}" for n, m in personas.items()),
            highlight=False,
        )


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)
