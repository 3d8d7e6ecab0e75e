"""Every scale figure of Clearance in one JSON document, measured in one run.

    python -m benchmarks.run [--million] [--quick] [--skip SECTION ...]

Sections, in this order (each is also its own command, see the README):

- ``search``: permission-filtered search latency (p50/p95) and recall@10 against exact
  search at ACL selectivities of 0.1 %, 1 %, 10 % and 50 %, for Qdrant's in-process engine
  and qdrant-client's local mode, at 100k chunks (1M with ``--million``), then
  ``POST /v1/search`` end to end over the engine's shard (``benchmarks/search.py``);
- ``embedding``: torch fp32 and int8 ONNX throughput and query latency on the same texts, at
  1 and 2 threads, and SciFact nDCG@10 for both (``benchmarks/embedding.py``);
- ``ingestion``: end-to-end ingestion of many short documents and of the sample corpus beside
  the raw embedder on the same chunks (``benchmarks/ingestion.py``);
- ``load``: ``/v1/search`` and ``/v1/chat`` under increasing concurrency beside the
  embedder-only rate (``benchmarks/load.py``);
- ``identity``: group resolution cold and warm (``benchmarks/identity.py``);
- ``audit``: audit overhead per answer and ``audit verify`` time on SQLite and PostgreSQL
  (``benchmarks/audit.py``).

``--quick`` shrinks every section (10k chunks, fewer queries, no SciFact) for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTIONS = ("search", "embedding", "ingestion", "load", "identity", "audit")


def _search(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import search

    options = search.parser().parse_args([])
    options.million = args.million
    if args.quick:
        options.chunks, options.queries, options.local_queries, options.e2e_queries = 10_000, 40, 5, 20
    return search.measure_search(options)


def _embedding(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.embedding import measure_embedding

    with tempfile.TemporaryDirectory(prefix="clearance-bench-models-") as scratch:
        return measure_embedding(
            model_cache=Path(scratch), texts=32 if args.quick else 128, repeats=1 if args.quick else 3,
            scifact=not args.quick,
        )  # fmt: skip


def _ingestion(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.ingestion import measure_ingestion

    return measure_ingestion(short_docs=100 if args.quick else 500)


def _load(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.load import run_load

    if args.quick:
        return run_load(index="edge", concurrencies=(1, 4), duration_s=1.0, warmup_s=0.5)
    return run_load(index="edge")


def _identity(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.identity import measure_identity

    return measure_identity(iterations=50 if args.quick else 200)


def _audit(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.audit import measure

    return measure(answers=50 if args.quick else 300, verify_records=5_000 if args.quick else 100_000)


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "search": _search,
    "embedding": _embedding,
    "ingestion": _ingestion,
    "load": _load,
    "identity": _identity,
    "audit": _audit,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--million", action="store_true", help="search at 1,000,000 chunks (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run of every section")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[], help="leave a section out")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": round(os.getloadavg()[0], 2),
        },
        "seconds": {},
    }
    for section in SECTIONS:
        if section in args.skip:
            continue
        started = time.perf_counter()
        report[section] = RUNNERS[section](args)
        report["seconds"][section] = round(time.perf_counter() - started, 1)
    report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
