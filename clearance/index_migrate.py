"""``clearance index backfill-sparse``: term weights for chunks written before hybrid search.

Reads each stored chunk's text and writes its BM25 term weights beside the dense
vector, which is kept as it is: nothing is parsed or embedded again. On the embedded
engine it also gives chunks written before them their IDF sample slots
(:mod:`index.idf_sample`); until every chunk has one, IDF is counted over every
readable chunk. A collection
on a Qdrant server too old to add a named vector in place is copied into a new
collection behind an alias first. Safe to interrupt and run again: chunks already
done are marked and skipped. Run it while nothing else writes to the index (the
embedded engine refuses a second process anyway).
"""

from __future__ import annotations

from typing import Annotated

import typer

from clearance.settings import Settings
from core.errors import ClearanceError
from index.ports import BackfillReport

index_app = typer.Typer(help="Index maintenance: migrations of the stored chunks.", no_args_is_help=True)

_SCHEMA = {
    "present": "the index already had term weights",
    "added": "term weights were added to the index in place",
    "rebuilt": "the collection was copied into a new one with term weights (the old name is now an alias)",
}


def run_backfill(settings: Settings, *, batch_size: int = 256, dimension: int | None = None) -> BackfillReport:
    """Open the configured index and backfill it; ``dimension`` None: the configured embedder's (loaded once)."""
    # Imported here: registering the command must not load the whole product for `clearance --help`.
    from clearance.compose import build_embedder, build_index

    size = dimension if dimension is not None else build_embedder(settings).dimension
    index = build_index(settings, dimension=size)
    try:
        return index.backfill_sparse(batch_size=batch_size)
    finally:
        index.close()


def describe(report: BackfillReport) -> str:
    return f"{report.updated} of {report.scanned} chunks given term weights; {_SCHEMA[report.schema]}"


@index_app.command("backfill-sparse")
def backfill_sparse(
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="chunks per write")] = 256,
) -> None:
    """Add BM25 term weights (and, embedded, IDF sample slots) to every chunk that lacks them (no re-embedding)."""
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: say which setting, no traceback
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(code=2) from None
    try:
        report = run_backfill(settings, batch_size=batch_size)
    except ClearanceError as exc:  # the index is held, closed or unreachable: the message says which
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(describe(report))
