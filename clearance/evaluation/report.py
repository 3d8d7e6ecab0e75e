"""The report: one JSON document (what the gate and the notebook read) and a Markdown page with plots.

Plots need matplotlib; without it the Markdown page says so and the JSON is
unchanged. Figures are drawn with matplotlib's object API (no pyplot, no global
backend), so writing a report inside a notebook leaves the notebook's plotting
alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clearance.evaluation.metrics import ItemScore, aggregate, by_persona, document_ranking
from clearance.evaluation.observation import Observation
from clearance.evaluation.runner import RunResult
from clearance.evaluation.scoring import score

SCHEMA = "clearance-eval/1"
HEADLINE = (
    ("resolved_safely", "resolved safely"),
    ("answer_correct", "answer correct (answerable)"),
    ("correctly_cited", "correctly cited (answerable)"),
    ("abstention_recall", "abstained when it should"),
    ("abstention_precision", "abstentions that were right"),
    ("citation_precision", "citation precision"),
    ("citation_recall", "citation recall"),
    ("faithfulness", "faithfulness"),
    ("token_f1", "token F1"),
    ("judged_correct", "judged correct"),
    ("recall@1", "recall@1"),
    ("recall@5", "recall@5"),
    ("recall@10", "recall@10"),
    ("recall@100", "recall@100"),
    ("ndcg@10", "nDCG@10"),
    ("mrr", "MRR"),
    ("leaked_chunks", "leaked chunks"),
    ("disclosures", "withheld facts disclosed"),
    ("errors", "errors"),
)


def build_report(result: RunResult, *, duration_s: float) -> dict[str, Any]:
    cutoffs = (1, 5, 10, 100) if result.eval_set.search_depth >= 100 else (1, 5, 10)
    scores = [score(o, cutoffs=cutoffs) for o in result.observations]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "set": {
            "name": result.eval_set.name,
            "kind": result.eval_set.kind.value,
            "source": result.eval_set.source,
            "items": len(result.observations),
            "generate": result.eval_set.generate,
            "search_depth": result.eval_set.search_depth,
            "notes": list(result.eval_set.notes),
        },
        "run": result.run,
        "ingest": {
            "documents": result.ingest.documents,
            "chunks": result.ingest.chunks,
            "seconds": result.ingest.seconds,
            "how": result.ingest.how,
        },
        "metrics": {"overall": aggregate(scores), "personas": by_persona(scores)},
        "items": [_item_row(s, o) for s, o in zip(scores, result.observations, strict=True)],
    }
    return report


def _item_row(s: ItemScore, o: Observation) -> dict[str, Any]:
    return {
        "id": s.item.id,
        "persona": s.item.persona,
        "question": s.item.question,
        "answerable": s.item.answerable,
        "expected": sorted(s.item.relevant),
        "outcome": o.outcome,
        "answer": o.answer,
        "citations": [source for _, source in o.citations],
        "top_documents": document_ranking(o.ranking)[:5],
        "resolved_safely": s.resolved_safely,
        "correct": s.correct,
        "correctly_cited": s.correctly_cited,
        "leaks": [{"chunk": x.chunk_id, "source": x.source, "where": x.where, "reason": x.reason} for x in o.leaks],
        "disclosed": s.disclosed,
        "error": o.error,
        "timings_ms": dict(o.timings_ms),
    }


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Writes ``out`` (JSON), ``out`` with ``.md``, and the plots beside them; returns every path written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plots = write_plots(report, out)
    markdown = out.with_suffix(".md")
    markdown.write_text(render_markdown(report, plots=[p.name for p in plots]), encoding="utf-8")
    return [out, markdown, *plots]


def render_markdown(report: dict[str, Any], *, plots: Sequence[str] = ()) -> str:
    overall, personas = report["metrics"]["overall"], report["metrics"]["personas"]
    run = report["run"]
    lines = [
        f"# Evaluation: {report['set']['name']}",
        "",
        f"{report['set']['items']} items from `{report['set']['source']}`, {report['created_at']}, "
        f"{report['duration_s']} s. Generator `{run['generator']}`, prompt {', '.join(run.get('prompts') or ['-'])}, "
        f"index {run['index']}, retrieval {json.dumps(run['retrieval'])}.",
        f"Corpus: {report['ingest']['documents']} documents, {report['ingest']['chunks']} chunks "
        f"({report['ingest']['how']}, {report['ingest']['seconds']} s).",
        "",
    ]
    if overall.get("resolved_safely") is not None:
        lines += [f"**Resolved safely: {_fmt(overall['resolved_safely'])}** of {overall['items']} items.", ""]
    leaked, disclosed = overall["leaked_chunks"], overall["disclosures"]
    lines += [f"Leaked chunks: **{leaked}**; withheld facts disclosed: **{disclosed}**.", ""]
    names = list(personas) if len(personas) > 1 else []
    lines += ["| metric | overall | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for key, label in HEADLINE:
        if key in overall and (overall[key] is not None or any(personas[n].get(key) is not None for n in names)):
            cells = [_fmt(overall[key])] + [_fmt(personas[n].get(key)) for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Latency per stage (ms)", "", "| stage | p50 | p95 | n |", "|---|---|---|---|"]
    for stage, values in overall["latency_ms"].items():
        lines.append(f"| {stage} | {_fmt(values['p50'])} | {_fmt(values['p95'])} | {values['n']} |")
    lines += ["", _STAGES_NOTE, ""]
    lines += [f"![{name}]({name})" for name in plots] or ["(plots need matplotlib)"]
    lines += _failures(report.get("items", []))
    lines += ["", "## Definitions", "", _DEFINITIONS]
    return "\n".join(lines) + "\n"


_STAGES_NOTE = (
    "auth: token validation by the API's authenticator (validated principals are cached as configured, so a "
    "persona's repeated token hits that cache); embed, search, generate: the answer service's own stage timings; "
    "answer: the whole `answer` call; search_call: the ranking search (`search`, its embedding included: the "
    "service does not split it). The query-embedding cache is off during evaluation (each question is asked once "
    "per persona), so embed is always a real embedding."
)
_DEFINITIONS = (
    "Rankings are over documents (each at its best chunk). An answer is correct when it contains one of the "
    "item's facts (ClapNQ: at least half of a reference answer's tokens); correctly cited when a sentence stating "
    "the fact cites a passage of a document that answers the item. Faithfulness: share of answer sentences the "
    "citation check keeps against the full passages they cite. Abstention precision and recall: 'should abstain' "
    "is the positive class. Leaked chunks: searched, given or cited chunks the asker may not read (stored ACL by "
    "the reference rule, tenant, and the set's own expectation). Resolved safely: correct and correctly cited "
    "when the asker may know the answer, an abstention when not, and nothing leaked or disclosed either way."
)


def _failures(items: Sequence[dict[str, Any]], shown: int = 40) -> list[str]:
    failed = [i for i in items if i.get("resolved_safely") is False]
    if not failed:
        return []
    lines = ["", f"## Not resolved safely ({len(failed)})", ""]
    lines += ["| item | outcome | answer | why |", "|---|---|---|---|"]
    for item in failed[:shown]:
        why = "leak" if item["leaks"] else "disclosed" if item["disclosed"] else item["error"] or _why(item)
        answer = (item["answer"] or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {item['id']} | {item['outcome']} | {answer[:160]} | {why} |")
    if len(failed) > shown:
        lines.append(f"| ... {len(failed) - shown} more in the JSON report | | | |")
    return lines


def _why(item: dict[str, Any]) -> str:
    if not item["answerable"]:
        return "answered where it should abstain"
    if item["outcome"] == "abstained":
        return "abstained where it could answer"
    return "wrong answer" if not item["correct"] else "fact not cited from an answering document"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.1f}"
    return str(value)


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Per-persona outcomes, latency per stage and the ranking metrics, as PNG files beside ``out``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    written = []
    personas = report["metrics"]["personas"]
    overall = report["metrics"]["overall"]
    if overall.get("resolved_safely") is not None:
        figure = Figure(figsize=(8, 4), layout="constrained")
        axes = figure.subplots()
        keys = [("resolved_safely", "resolved safely"), ("answer_correct", "correct")]
        keys.append(("abstention_recall", "abstained"))
        names = list(personas)
        width = 0.8 / len(keys)
        for offset, (key, label) in enumerate(keys):
            values = [personas[n].get(key) or 0.0 for n in names]
            axes.bar([i + offset * width for i in range(len(names))], values, width=width, label=label)
        axes.set_xticks([i + width for i in range(len(names))], names)
        axes.set_ylim(0, 1.05)
        axes.set_title("Per persona")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=len(keys), frameon=False)
        written.append(_save(figure, out, "personas"))
    stages = overall["latency_ms"]
    if stages:
        figure = Figure(figsize=(8, 3.5), layout="constrained")
        axes = figure.subplots()
        names = list(stages)
        axes.barh(names, [stages[s]["p95"] or 0.0 for s in names], color="#c9d6ea", label="p95")
        axes.barh(names, [stages[s]["p50"] or 0.0 for s in names], color="#3b6ea8", label="p50")
        axes.set_xlabel("ms")
        axes.set_title("Latency per stage")
        axes.invert_yaxis()  # stages top to bottom in the order a request meets them
        axes.legend(loc="lower right")
        written.append(_save(figure, out, "latency"))
    ranking = [(k, overall.get(k)) for k in ("recall@1", "recall@5", "recall@10", "recall@100", "ndcg@10", "mrr")]
    ranking = [(k, v) for k, v in ranking if v is not None]
    if ranking:
        figure = Figure(figsize=(6, 3), layout="constrained")
        axes = figure.subplots()
        axes.bar([k for k, _ in ranking], [v for _, v in ranking], color="#5b8c5a")
        axes.set_ylim(0, 1.05)
        axes.set_title("Retrieval")
        written.append(_save(figure, out, "retrieval"))
    return written


def _save(figure: Any, out: Path, name: str) -> Path:
    path = out.with_name(f"{out.stem}.{name}.png")
    figure.savefig(path, dpi=100)
    return path
