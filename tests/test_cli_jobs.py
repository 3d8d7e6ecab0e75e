"""Job records from the command line: ids that `jobs show` accepts, at any terminal width."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.compose import build_store
from clearance.settings import Settings
from ingest.jobs import JobRecordStore
from tests.conftest import TENANT


@pytest.fixture()
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobRecordStore]:
    """The state store the CLI reads (CLEARANCE_DATA_DIR's SQLite file)."""
    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    store = build_store(Settings(data_dir=tmp_path / "data"))
    yield store.jobs
    store.close()


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_jobs_list_shows_whole_ids_that_jobs_show_accepts(jobs: JobRecordStore, columns: str) -> None:
    from clearance.cli import app

    job = jobs.create(source="brightwater/finance", tenant_id=TENANT)
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list"], env={"COLUMNS": columns})
    assert listed.exit_code == 0 and job.id in listed.output
    shown = runner.invoke(app, ["jobs", "show", job.id], env={"COLUMNS": columns})
    assert shown.exit_code == 0 and "brightwater/finance" in shown.output and "not started" in shown.output
    raw = runner.invoke(app, ["jobs", "show", job.id, "--json"])
    assert raw.exit_code == 0 and f'"id": "{job.id}"' in raw.output


def test_unknown_job_is_a_clear_error(jobs: JobRecordStore) -> None:
    from clearance.cli import app

    result = CliRunner().invoke(app, ["jobs", "show", "job-nope"])
    assert result.exit_code == 2 and "no job" in result.output
