"""All real-world fixture documents through the ingestion pipeline.

Every file must end as indexed chunks or as an error line with a reason in the
job record: no crash, no aborted job, nothing silently dropped. It takes a few
minutes (about 12,000 chunks are embedded); deselect with ``-m "not fixtures"``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from clearance.runtime import Runtime
from ingest.jobs import FileOutcome, JobStatus
from ingest.manifest import is_manifest
from ingest.source import FilesystemSource
from tests.conftest import SHARED_DATA, TENANT

FIXTURES = SHARED_DATA / "fixtures"
# Protected against editing only, not against reading: a workbook with sheet
# protection and a PDF with an owner password alone open without a password.
READABLE_DESPITE_NAME = {"protectedSheets.xlsx", "testPDF_protected.pdf"}


@pytest.mark.fixtures
@pytest.mark.filterwarnings("ignore::UserWarning")  # odd real-world files make the readers warn
def test_every_fixture_yields_chunks_or_a_recorded_error(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture documents not found at {FIXTURES} (set CLEARANCE_SHARED_DATA)")
    expected = sorted(
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and not is_manifest(p)
        and not any(part.startswith(".") for part in p.relative_to(FIXTURES).parts)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a bulk ingestion, not a latency-sensitive query
    try:
        job = runtime.pipeline.run(FilesystemSource(root=FIXTURES, tenant_id=TENANT))
    finally:
        torch.set_num_threads(threads)

    assert job.status is JobStatus.COMPLETED_WITH_ERRORS, job.failure
    assert job.files_total == len(expected) and job.files_done == len(expected)
    errors = {issue.path: issue.reason for issue in job.errors}
    indexed = runtime.index.document_states(
        tenant_id=TENANT, source_id=FilesystemSource(root=FIXTURES, tenant_id=TENANT).source_id
    )
    for path in expected:
        if path in errors:
            assert errors[path].strip() and len(errors[path]) <= 300, path
            assert path not in indexed, path
        else:
            assert path in indexed and indexed[path].chunk_count > 0, f"{path}: neither chunks nor an error"
    assert job.counts[FileOutcome.ADDED.value] + job.counts[FileOutcome.FAILED.value] == len(expected)
    assert job.chunks_written == sum(state.chunk_count for state in indexed.values())

    for path in expected:
        name = Path(path).name
        if path.startswith("tika/") and "protected" in name:
            assert (path in errors) == (name not in READABLE_DESPITE_NAME), (path, errors.get(path))
    for broken in ("tika/testWORD_truncated.docx", "tika/testODTnotaZipFile.odt"):
        if broken in expected:
            assert broken in errors, broken

    tally = Counter("unsupported file type" if r.startswith("unsupported") else r for r in errors.values())
    with capsys.disabled():
        print(
            f"\nfixtures: {len(expected)} files, {len(indexed)} indexed ({job.chunks_written} chunks), "
            f"{len(errors)} errors in {job.to_dict()['duration_s']} s; stages {job.timings}"
        )
        for reason, count in tally.most_common():
            print(f"  {count:4d}  {reason}")
