"""`clearance db upgrade`, `clearance audit verify` and `clearance audit export`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import update
from typer.testing import CliRunner

from clearance.store_cli import audit_app, db_app
from store.audit_query import AuditQuery
from store.audit_tables import AuditRecordRow
from store.migrate import head_revision
from store.state import Store
from tests import store_fixtures
from tests.conftest import TENANT
from tests.store_fixtures import USER, StoreTarget, sample_answer

target = store_fixtures.target
cli = typer.Typer()
cli.add_typer(db_app, name="db")
cli.add_typer(audit_app, name="audit")


@pytest.fixture()
def configured(target: StoreTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreTarget:
    """The settings (environment) a deployment would have for this store."""
    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    if target.backend == "postgresql":
        monkeypatch.setenv("CLEARANCE_STORE__URL", target.url)
        monkeypatch.setenv("CLEARANCE_STORE__SCHEMA_NAME", target.schema or "")
        return target
    return StoreTarget(backend="sqlite", url=f"sqlite+pysqlite:///{tmp_path / 'data' / 'state.db'}")


def _filled(target: StoreTarget) -> Store:
    store = target.open(migrate=False)
    for number in range(1, 6):
        store.audit_sink.record(sample_answer(number))
    return store


def test_db_upgrade_migrates_an_empty_store_once(configured: StoreTarget) -> None:
    first = CliRunner().invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    head = head_revision()
    assert f"empty -> {head}" in first.output
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert again.exit_code == 0 and f"already at {head}" in again.output
    store = configured.open(migrate=False)
    try:
        [upgrade] = store.reader.page(AuditQuery(tenant_id=""))
        assert upgrade.action == "db.upgrade" and upgrade.actor.startswith("cli:")
    finally:
        store.close()


def test_audit_verify_passes_then_names_the_first_edited_record(configured: StoreTarget) -> None:
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    store = _filled(configured)
    try:
        good = CliRunner().invoke(cli, ["audit", "verify", "--json"])
        assert good.exit_code == 0, good.output
        report = json.loads(good.stdout)
        assert report["ok"] and report["records"] == 6  # five answers and the schema upgrade
        with store.database.write() as session:
            session.execute(
                update(AuditRecordRow)
                .where(AuditRecordRow.chain == TENANT, AuditRecordRow.seq == 3)
                .values(outcome="abstained")
            )
    finally:
        store.close()
    bad = CliRunner().invoke(cli, ["audit", "verify"])
    assert bad.exit_code == 1
    assert f"tenant {TENANT}, record 3" in bad.output and "edited" in bad.output


def test_audit_verify_refuses_a_store_that_was_never_migrated(configured: StoreTarget) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 2 and "clearance db upgrade" in result.output


def test_audit_export_writes_json_lines_and_is_audited(configured: StoreTarget, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    _filled(configured).close()
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(cli, ["audit", "export", "--tenant", TENANT, "--user", USER, "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5] and out.stat().st_mode & 0o077 == 0
    store = configured.open(migrate=False)
    try:
        exports = [r for r in store.reader.page(AuditQuery(tenant_id=TENANT)) if r.action == "audit.export"]
        assert len(exports) == 1 and exports[0].personal is not None
        assert exports[0].personal["private"] == {"user": USER}
    finally:
        store.close()
