"""Ingestion throughput beside the raw embedder's, measured on the same chunks in the same run.

    python -m benchmarks.ingestion [--short-docs 500] [--samples] [--parse-workers N] [--index LOCATION]

Two corpora: N short synthetic documents (Markdown notes, plain-text memos and
e-mails in equal parts, one chunk each: the case where a fixed cost per file
shows) and the bundled sample corpus (office files, PDFs, e-mail, HTML). For each,
the whole pipeline runs as the composition root builds it (isolated parsing
workers, the configured embedder and index), then the very same chunk texts are
embedded again in one call: ``embedding_share`` is end-to-end chunks/s over the
raw embedder's chunks/s (1.0: ingestion runs at the embedder's speed). The
parsing workers are started before the clock starts, as a server has them from
its first job on; ``parser_start_s`` is that start-up, which a one-off
``clearance ingest`` pays once on top.

Timings on a shared machine are noisy; compare figures from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clearance.compose import build_embedder, build_indexing
from clearance.samples import SAMPLE_CORPUS
from clearance.settings import EmbeddingBackend, EmbeddingSettings, IndexSettings, IngestSettings, Settings
from index.ports import Embedder
from ingest.chunk import chunk_document, embedding_text
from ingest.parse import parse_document
from ingest.source import FilesystemSource

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
_WORDS = (
    "robot fleet warehouse battery charger firmware route picker shelf order invoice budget forecast safety "
    "sensor lidar incident customer contract renewal pricing discount quarter revenue margin hiring onboarding "
    "policy travel expense approval vendor payment audit compliance training shift is the will has"
).split()


def write_short_corpus(root: Path, count: int, *, seed: int = 7) -> Path:
    """``count`` short documents (.md, .txt, .eml in turn), ten folders each with a tenant-wide manifest."""
    rng = random.Random(seed)
    for number in range(count):
        folder = root / f"team-{number % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / ".acl.json"
        if not manifest.exists():
            manifest.write_text(json.dumps({"allow": ["tenant"]}), encoding="utf-8")
        body = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
        if number % 3 == 0:
            (folder / f"note-{number:05d}.md").write_text(f"# Note {number}\n\n{body}\n", encoding="utf-8")
        elif number % 3 == 1:
            (folder / f"memo-{number:05d}.txt").write_text(f"Memo {number}\n\n{body}\n", encoding="utf-8")
        else:
            headers = (
                f"From: ops@example.com\nTo: team@example.com\nSubject: Update {number}\n"
                "Date: Mon, 1 Jan 2024 10:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n"
            )
            (folder / f"mail-{number:05d}.eml").write_text(f"{headers}\n{body}\n", encoding="utf-8")
    return root


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."


def chunk_texts(source: FilesystemSource, max_chars: int) -> list[str]:
    """What the pipeline embeds for ``source``, parsed again in this process (files that fail are left out)."""
    texts: list[str] = []
    for item in source.items():
        try:
            parsed = parse_document(item.local_path)
        except Exception:
            continue
        title = parsed.title or Path(item.path).stem
        texts.extend(embedding_text(title=title, chunk=c) for c in chunk_document(parsed, max_chars=max_chars))
    return texts


class TimedEmbedder:
    """The embedder, with the wall and thread CPU time of its document calls added up."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.wall_s = 0.0
        self.cpu_s = 0.0

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._inner.embed_documents(texts)
        finally:
            self.wall_s += time.perf_counter() - wall
            self.cpu_s += time.thread_time() - cpu

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)


def measure_corpus(settings: Settings, embedder: Embedder, source: FilesystemSource) -> dict[str, Any]:
    """One full ingestion of ``source`` into a fresh index, with the raw embedder on the same chunks.

    The raw embedder runs on the very chunks the pipeline embeds, in one call, just before and
    just after the ingestion (the load of a shared machine drifts); ``embedding_share`` compares
    with their mean. Besides wall-clock rates, CPU time per file: the embedder's (its calling
    thread), the rest of the ingesting process (reading, chunking, index writes, bookkeeping)
    and the parsing workers'. CPU times move much less with the machine's load than rates do:
    on two idle cores, with the embedder on one and everything else on the other, ingestion
    keeps up with the embedder while ``ingesting_process_other + parsing_workers`` stays below
    ``embedder``.
    """
    texts = chunk_texts(source, settings.ingest.max_chunk_chars)
    raw_before = _raw_rate(embedder, texts)
    timed = TimedEmbedder(embedder)
    indexing = build_indexing(settings, embedder=timed)
    try:
        # Parsing workers start once per process and serve every later job (the API keeps them):
        # their start-up is reported apart from the run, which measures the steady state.
        parser_start_s = indexing.parser.start() if indexing.parser is not None else 0.0
        pids = indexing.parser.worker_pids if indexing.parser is not None else ()
        workers_cpu, process_cpu = _cpu_of(pids), time.process_time()
        started = time.perf_counter()
        job = indexing.pipeline.run(source)
        elapsed = time.perf_counter() - started
        process_cpu, workers_cpu = time.process_time() - process_cpu, _cpu_of(pids) - workers_cpu
    finally:
        indexing.close()
    raw_after = _raw_rate(embedder, texts)
    raw = (raw_before + raw_after) / 2
    chunks_per_s = job.chunks_written / elapsed
    files = max(job.files_total, 1)
    return {
        "files": job.files_total,
        "chunks": job.chunks_written,
        "errors": len(job.errors),
        "status": job.status.value,
        "parse_workers": indexing.parser.workers if indexing.parser is not None else 0,
        "parser_start_s": round(parser_start_s, 2),
        "seconds": round(elapsed, 2),
        "files_per_s": round(job.files_total / elapsed, 2),
        "chunks_per_s": round(chunks_per_s, 2),
        "stage_seconds": {name: round(value, 2) for name, value in job.timings.items()},
        "raw_embedding_chunks_per_s": {"before": round(raw_before, 2), "after": round(raw_after, 2)},
        "embedding_share": round(chunks_per_s / raw, 3) if raw else None,
        "cpu_ms_per_file": {
            "embedder": round(1000 * timed.cpu_s / files, 2),
            "ingesting_process_other": round(1000 * (process_cpu - timed.cpu_s) / files, 2),
            "parsing_workers": round(1000 * workers_cpu / files, 2),
        },
    }


def _raw_rate(embedder: Embedder, texts: list[str]) -> float:
    if not texts:
        return 0.0
    started = time.perf_counter()
    embedder.embed_documents(texts)
    return len(texts) / (time.perf_counter() - started)


def _cpu_of(pids: Iterable[int]) -> float:
    """User and system CPU seconds of running processes, from /proc (0 for any that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure_ingestion(
    *,
    short_docs: int = 500,
    samples: bool = True,
    index: str = "edge",
    ingest: IngestSettings | None = None,
    embedding: EmbeddingSettings | None = None,
    embedder: Embedder | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Figures for the short-document corpus and (optionally) the sample corpus, as one dict.

    With ``repeat`` > 1 each corpus is ingested that many times (each into a fresh index); its
    figures are those of the median run by ``embedding_share``, with every run's share beside.
    """
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}}
    with tempfile.TemporaryDirectory(prefix="clearance-ingest-bench-") as scratch:
        folder = Path(scratch)
        settings = Settings(
            data_dir=folder / "data",
            index=IndexSettings(location=index),
            ingest=ingest or IngestSettings(),
            embedding=embedding or EmbeddingSettings(),
        )
        # The embedder from the usual data folder, where an exported model is cached between runs.
        embedder = embedder or build_embedder(Settings(embedding=settings.embedding))
        report["settings"] = {
            "index": index,
            "embedder": type(embedder).__name__,
            "embedding_threads": settings.embedding.threads,
            "ingest": settings.ingest.model_dump(mode="json", exclude={"allowed_roots", "default_tenant"}),
        }
        corpora: dict[str, FilesystemSource] = {}
        if short_docs > 0:
            root = write_short_corpus(folder / "short", short_docs)
            corpora["short_documents"] = FilesystemSource(root=root, tenant_id=TENANT)
        if samples:
            corpora.update(_sample_sources())
        for name, source in corpora.items():
            runs = []
            for number in range(max(1, repeat)):
                # A fresh index per run: `index` names a kind of location, made unique here.
                settings.index.location = _fresh(index, folder / f"{name}-{number}")
                runs.append(measure_corpus(settings, embedder, source))
            runs.sort(key=lambda run: run["embedding_share"] or 0.0)
            report[name] = runs[len(runs) // 2]
            if len(runs) > 1:
                report[name]["embedding_share_of_each_run"] = [run["embedding_share"] for run in runs]
    return report


def _sample_sources() -> Iterator[tuple[str, FilesystemSource]]:
    for folder in sorted(path for path in SAMPLE_CORPUS.iterdir() if path.is_dir()):
        yield f"samples_{folder.name}", FilesystemSource(root=folder, tenant_id=TENANT)


def _fresh(index: str, scratch: Path) -> str:
    if index == ":memory:" or index.startswith(("http://", "https://")):
        return index
    return f"edge:{scratch / 'edge'}" if index.startswith("edge") else str(scratch / "index")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short-docs", type=int, default=500, help="short synthetic documents (0: none)")
    parser.add_argument("--no-samples", action="store_true", help="skip the bundled sample corpus")
    parser.add_argument("--index", default="edge", help="'edge' (a fresh in-process shard), 'local' or ':memory:'")
    parser.add_argument("--embed-threads", type=int, default=1, help="the embedder's threads")
    parser.add_argument("--backend", choices=[b.value for b in EmbeddingBackend], default=None, help="the embedder")
    parser.add_argument("--parse-workers", type=int, default=None, help="parsing worker processes (default: setting)")
    parser.add_argument("--in-process", action="store_true", help="parse in the ingesting process (no isolation)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per corpus (the median run is reported)")
    args = parser.parse_args()
    overrides: dict[str, Any] = {"isolate_parsing": not args.in_process}
    if args.parse_workers is not None:
        overrides["parse_workers"] = args.parse_workers
    report = measure_ingestion(
        short_docs=args.short_docs,
        samples=not args.no_samples,
        index=args.index,
        ingest=IngestSettings(**overrides),
        embedding=EmbeddingSettings(threads=args.embed_threads, **({"backend": args.backend} if args.backend else {})),
        repeat=args.repeat,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
