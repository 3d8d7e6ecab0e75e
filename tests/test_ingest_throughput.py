"""Ingestion in overlapping stages: many files per embedder call, each file still on its own.

Files of different sizes, ACLs and fates are embedded together; each must come out
with its own ACL, its own chunks and the vectors of its own texts. The embedder is
the real one, wrapped only to write down what each call received (and, in one test,
to fail on one text); the parser is the real one, in worker processes where it says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from acl.access import AccessList
from acl.principal import Principal, group_key
from clearance.compose import Runtime
from core.cancel import Cancellation
from index.ports import Embedder
from ingest.chunk import chunk_document, embedding_text
from ingest.jobs import FileOutcome, JobRecord, JobStatus
from ingest.parse import IsolatedParser, parse_document
from ingest.pipeline import IngestionPipeline, document_id
from ingest.source import FilesystemSource
from tests.conftest import G1, TENANT, write_acl, write_doc
from tests.test_parse import make_samples
from tests.test_parse_limits import SHARED_LIMITS

REPO_ROOT = Path(__file__).resolve().parents[1]


class RecordingEmbedder:
    """The real embedder; every call's texts are kept, and a text containing ``fail_on`` fails its call.

    The first call is held for ``hold_first_s``, so that every other file of a small test corpus is
    parsed by the time it returns: the next call then holds several files whatever the machine's load.
    """

    def __init__(self, inner: Embedder, *, fail_on: str | None = None, hold_first_s: float = 0.0) -> None:
        self._inner = inner
        self._fail_on = fail_on
        self._hold_s = hold_first_s
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.calls:
            time.sleep(self._hold_s)
        self.calls.append(list(texts))
        if self._fail_on is not None and any(self._fail_on in text for text in texts):
            raise ValueError("this text cannot be embedded")
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)


def group_of(number: int) -> str:
    return f"e0000000-0000-4000-8000-{number:012d}"


def reader(*numbers: int) -> Principal:
    return Principal(
        tenant_id=TENANT, object_id="d0000000-0000-4000-8000-0000000000aa", groups=frozenset(map(group_of, numbers))
    )


def marker(number: int) -> str:
    return f"Kestrel{number:03d}"


def write_numbered(docs: Path, number: int) -> Path:
    """A document whose every chunk names its number; every fourth one has four sections (four chunks)."""
    sentence = f"The {marker(number)} ledger lists shipments for warehouse {number}. "
    parts = 4 if number % 4 == 0 else 1
    body = "\n\n".join(f"## Part {part}\n\n" + sentence * 12 for part in range(parts))
    path = write_doc(docs, f"doc-{number:02d}.md", f"# Ledger {number}\n\n{body}\n")
    write_acl(path, allow=[f"group:{group_of(number)}"])
    return path


def expected_texts(path: Path) -> list[str]:
    parsed = parse_document(path)
    title = parsed.title or path.stem
    return [embedding_text(title=title, chunk=chunk) for chunk in chunk_document(parsed, max_chars=1000)]


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


def test_files_embedded_together_keep_their_own_acl_chunks_and_vectors(runtime: Runtime, docs: Path) -> None:
    numbers = range(24)
    paths = {number: write_numbered(docs, number) for number in numbers}
    # Failures between them, which must not shift anyone's chunks or ACL onto a neighbour.
    write_doc(docs, "doc-03-empty.md", "")
    (docs / "doc-07-broken.docx").write_bytes(b"PK\x03\x04 not really a docx")
    broken_acl = write_doc(docs, "doc-11-unreadable-acl.md", "# Secret\n\nThe Kestrel999 ledger.")
    broken_acl.with_name(broken_acl.name + ".acl.json").write_text("{not json", encoding="utf-8")
    write_acl(docs, allow=[f"group:{G1}"])  # the folder's ACL, which the sidecars replace
    spy = RecordingEmbedder(runtime.embedder, hold_first_s=2.0)
    source = FilesystemSource(root=docs, tenant_id=TENANT)
    with IsolatedParser(SHARED_LIMITS, workers=2) as parser:
        pipeline = IngestionPipeline(
            index=runtime.index,
            embedder=spy,
            jobs=runtime.jobs,
            parser=parser,
            parse_workers=2,
            embed_batch_chunks=16,
        )
        job = pipeline.run(source)

    assert job.counts[FileOutcome.ADDED.value] == len(numbers), job.errors
    assert {issue.path for issue in job.errors} == {
        "doc-03-empty.md",
        "doc-07-broken.docx",
        "doc-11-unreadable-acl.md",
    }
    # The test means something only if files really shared embedder calls.
    shared_calls = [call for call in spy.calls if len({text.split()[1] for text in call}) > 1]
    assert shared_calls, f"no embedder call held more than one file: {[len(call) for call in spy.calls]}"

    everyone = reader(*numbers)
    for number, path in paths.items():
        doc_id = document_id(tenant_id=TENANT, source_id=source.source_id, path=path.name)
        assert runtime.index.stored_acl(doc_id) == AccessList(allow=frozenset({group_key(TENANT, group_of(number))}))
        own = runtime.index.search(reader(number), runtime.embedder.embed_query("ledger shipments"), top_k=100)
        assert {passage.source for passage in own} == {path.name}
        texts = expected_texts(path)
        assert len(own) == len(texts)
        assert all(marker(number) in passage.text for passage in own)
        for text in texts:
            # The stored vector of each chunk is its own text's: searching with it finds that chunk first.
            best = runtime.index.search(everyone, runtime.embedder.embed_query(text), top_k=1)[0]
            assert best.source == path.name and best.text in text and best.score > 0.99


def test_one_file_the_embedder_cannot_take_fails_alone(runtime: Runtime, docs: Path) -> None:
    for number in range(6):
        write_numbered(docs, number)
    poisoned = write_doc(docs, "doc-09.md", "# Ledger 9\n\nThe Kestrel009 ledger lists shipments.")
    write_acl(poisoned, allow=[f"group:{group_of(9)}"])
    source = FilesystemSource(root=docs, tenant_id=TENANT)
    runtime.pipeline.run(source)  # first, a version that embeds
    assert {p.source for p in runtime.index.search(reader(9), runtime.embedder.embed_query("ledger"), top_k=5)} == {
        "doc-09.md"
    }
    poisoned.write_text("# Ledger 9\n\nThe POISON ledger lists shipments.", encoding="utf-8")
    for number in range(6):  # changed too, so that they are embedded beside it
        (docs / f"doc-{number:02d}.md").write_text(f"# Ledger {number}\n\nThe {marker(number)} new ledger.\n")
    spy = RecordingEmbedder(runtime.embedder, fail_on="POISON", hold_first_s=1.0)
    pipeline = IngestionPipeline(
        index=runtime.index, embedder=spy, jobs=runtime.jobs, parser=parse_document, embed_batch_chunks=64
    )
    job = pipeline.run(source)

    assert job.status is JobStatus.COMPLETED_WITH_ERRORS
    assert [(e.path, e.reason) for e in job.errors] == [
        ("doc-09.md", "internal error while handling this file (ValueError); not indexed")
    ]
    assert job.counts[FileOutcome.UPDATED.value] == 6
    assert any(len(call) > 1 and any("POISON" in text for text in call) for call in spy.calls), spy.calls
    # Its earlier version is gone with it; the others are the new versions.
    assert runtime.index.search(reader(9), runtime.embedder.embed_query("ledger"), top_k=5) == []
    for number in range(6):
        texts = [p.text for p in runtime.index.search(reader(number), runtime.embedder.embed_query("ledger"), top_k=9)]
        assert texts and all("new ledger" in text for text in texts)


def test_short_files_share_embedder_calls_and_every_file_is_counted(runtime: Runtime, docs: Path) -> None:
    for number in range(60):
        write_doc(docs, f"note-{number:02d}.md", f"# Note {number}\n\nThe depot {number} opens at {number % 12} am.\n")
    write_acl(docs, allow=["tenant"])
    spy = RecordingEmbedder(runtime.embedder)
    seen: list[tuple[int, str | None]] = []

    def progress(job: JobRecord, path: str | None) -> None:
        seen.append((job.files_done, path))

    pipeline = IngestionPipeline(index=runtime.index, embedder=spy, jobs=runtime.jobs, parser=parse_document)
    job = pipeline.run(FilesystemSource(root=docs, tenant_id=TENANT), progress=progress)

    assert job.status is JobStatus.SUCCEEDED and job.counts[FileOutcome.ADDED.value] == 60
    assert job.chunks_written == 60 and runtime.index.count() == 60
    assert sum(len(call) for call in spy.calls) == 60
    assert len(spy.calls) <= 60 // 4, [len(call) for call in spy.calls]  # one call per file was the old cost
    assert [done for done, _ in seen] == list(range(61))  # a start, then one step per file
    assert {path for _, path in seen[1:]} == {f"note-{number:02d}.md" for number in range(60)}
    assert job.files_done == job.files_total == 60


def test_cancelled_job_starts_nothing_new_and_leaves_whole_documents(runtime: Runtime, docs: Path) -> None:
    for number in range(40):
        write_doc(docs, f"note-{number:02d}.md", f"# Note {number}\n\nThe depot {number} opens early.\n")
    write_acl(docs, allow=["tenant"])
    cancel = Cancellation()

    def progress(job: JobRecord, path: str | None) -> None:
        if job.files_done >= 5:
            cancel.cancel()

    pipeline = IngestionPipeline(
        index=runtime.index, embedder=runtime.embedder, jobs=runtime.jobs, parser=parse_document, embed_batch_chunks=4
    )
    source = FilesystemSource(root=docs, tenant_id=TENANT)
    job = pipeline.run(source, progress=progress, cancel=cancel)

    assert job.status is JobStatus.CANCELLED and job.failure is not None and job.failure.startswith("cancelled after ")
    assert 5 <= job.files_done < 40
    stored = runtime.index.document_states(tenant_id=TENANT, source_id=source.source_id)
    assert len(stored) == job.counts[FileOutcome.ADDED.value] == job.files_done
    assert runtime.index.count(live_only=False) == runtime.index.count() == len(stored)  # nothing half-written
    assert runtime.jobs.get(job.id).failure == job.failure
    # The next run picks up where it stopped.
    again = pipeline.run(source)
    assert again.counts[FileOutcome.UNCHANGED.value] == len(stored)
    assert again.counts[FileOutcome.ADDED.value] == 40 - len(stored)


# Runs in a fresh interpreter: whether langdetect's detector was ever built while parsing.
_LANGUAGE_PROBE = """
import json, sys
from pathlib import Path
from ingest.parse import parse_document
results = {name: len(parse_document(Path(name)).elements) for name in sys.argv[1:]}
from langdetect import detector_factory
print(json.dumps({"results": results, "detector_built": detector_factory._factory is not None}))
"""


def test_parsing_skips_language_detection(tmp_path: Path) -> None:
    # `unstructured` would run langdetect on every document only to fill metadata nothing reads:
    # that was two thirds of the parse time of a short file.
    files = [path for suffix, path in make_samples(tmp_path).items() if suffix != ".pdf"]
    rtf = tmp_path / "memo.rtf"
    rtf.write_text(r"{\rtf1\ansi{\b Shipping memo}\par The dock opens at 6 am.\par}", encoding="ascii")
    files.append(rtf)
    completed = subprocess.run(
        [sys.executable, "-c", _LANGUAGE_PROBE, *map(str, files)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert all(count > 0 for count in report["results"].values()), report["results"]
    assert report["detector_built"] is False
