"""Real-world fixture documents (../shared/data/fixtures): parsing, chunking and ingestion.

Every one of the 670 files must end as chunks or as a short, clear per-file error:
no crash, nothing silently dropped. That is a property of parsing and chunking,
so the first test runs those on every file without embedding anything (embedding
12,000 chunks took 9 of the suite's 15 minutes and checked nothing more). The
second test runs the full pipeline, real embedder and index included, on a
representative sample: the smallest file of every format plus the broken and
protected ones, so the job-record bookkeeping is still proven end to end.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from clearance.compose import Runtime
from core.errors import DocumentParseError
from ingest.chunk import chunk_document
from ingest.jobs import FileOutcome, JobStatus
from ingest.manifest import is_manifest
from ingest.parse import parse_document
from ingest.source import FilesystemSource
from tests.conftest import SHARED_DATA, TENANT, write_acl

FIXTURES = SHARED_DATA / "fixtures"
# Protected against editing only, not against reading: a workbook with sheet
# protection and a PDF with an owner password alone open without a password.
READABLE_DESPITE_NAME = {"protectedSheets.xlsx", "testPDF_protected.pdf"}
BROKEN = ("tika/testWORD_truncated.docx", "tika/testODTnotaZipFile.odt")


def _fixture_files() -> list[str]:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture documents not found at {FIXTURES} (set CLEARANCE_SHARED_DATA)")
    return sorted(
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not is_manifest(p)
        and not any(part.startswith(".") for part in p.relative_to(FIXTURES).parts)
    )


def _assert_protected_and_broken_files_fail(expected: list[str], errors: dict[str, str]) -> None:
    for path in expected:
        name = Path(path).name
        if path.startswith("tika/") and "protected" in name:
            assert (path in errors) == (name not in READABLE_DESPITE_NAME), (path, errors.get(path))
    for broken in BROKEN:
        if broken in expected:
            assert broken in errors, broken


@pytest.mark.fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")  # odd real-world files make the readers warn
def test_every_fixture_parses_to_chunks_or_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    expected = _fixture_files()
    errors: dict[str, str] = {}
    chunk_counts: dict[str, int] = {}
    for path in expected:
        try:
            chunks = chunk_document(parse_document(FIXTURES / path), max_chars=1000)
        except DocumentParseError as exc:
            errors[path] = exc.reason
            continue
        chunk_counts[path] = len(chunks)
    for path in expected:
        if path in errors:
            assert errors[path].strip() and len(errors[path]) <= 300, path
        else:
            assert chunk_counts[path] > 0, f"{path}: neither chunks nor an error"
    _assert_protected_and_broken_files_fail(expected, errors)

    tally = Counter("unsupported file type" if r.startswith("unsupported") else r for r in errors.values())
    with capsys.disabled():
        print(
            f"\nfixtures: {len(expected)} files, {len(chunk_counts)} parsed "
            f"({sum(chunk_counts.values())} chunks), {len(errors)} errors"
        )
        for reason, count in tally.most_common():
            print(f"  {count:4d}  {reason}")


def _representative_sample() -> list[str]:
    """The smallest file of every format, plus the deliberately broken and protected ones."""
    by_suffix: dict[str, str] = {}
    for path in _fixture_files():
        suffix = Path(path).suffix.lower()
        if suffix not in by_suffix or (FIXTURES / path).stat().st_size < (FIXTURES / by_suffix[suffix]).stat().st_size:
            by_suffix[suffix] = path
    special = {p for p in _fixture_files() if p in BROKEN or "protected" in Path(p).name}
    return sorted(set(by_suffix.values()) | special)


@pytest.mark.fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_representative_fixtures_ingest_to_chunks_or_recorded_errors(runtime: Runtime, tmp_path: Path) -> None:
    sample = _representative_sample()
    root = tmp_path / "fixtures"
    for path in sample:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / path, root / path)
    write_acl(root, allow=["tenant"])
    source = FilesystemSource(root=root, tenant_id=TENANT)

    job = runtime.pipeline.run(source)

    assert job.status is JobStatus.COMPLETED_WITH_ERRORS, job.failure
    assert job.files_total == len(sample) and job.files_done == len(sample)
    errors = {issue.path: issue.reason for issue in job.errors}
    indexed = runtime.index.document_states(tenant_id=TENANT, source_id=source.source_id)
    for path in sample:
        if path in errors:
            assert errors[path].strip() and len(errors[path]) <= 300, path
            assert path not in indexed, path
        else:
            assert path in indexed and indexed[path].chunk_count > 0, f"{path}: neither chunks nor an error"
    assert job.counts[FileOutcome.ADDED.value] + job.counts[FileOutcome.FAILED.value] == len(sample)
    assert job.chunks_written == sum(state.chunk_count for state in indexed.values())
    _assert_protected_and_broken_files_fail(sample, errors)
    assert len({Path(p).suffix.lower() for p in indexed}) >= 15  # most formats really reached the index
