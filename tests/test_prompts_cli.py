"""`clearance prompts` on SQLite and PostgreSQL, and its evaluation gate run for real on a small persona set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clearance.cli import app
from retrieval.prompt_files import to_toml
from retrieval.prompts import GROUNDED_ANSWER, GROUNDED_ANSWER_V1
from store.audit_log import RecordKind
from store.audit_query import AuditQuery
from store.state import Store
from tests import store_fixtures
from tests.conftest import REPO_ROOT, TENANT
from tests.store_fixtures import StoreTarget
from tests.test_prompts import version

target = store_fixtures.target


@pytest.fixture()
def configured(target: StoreTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreTarget:
    """The settings (environment) a deployment would have for this store, one default tenant."""
    monkeypatch.setenv("CLEARANCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLEARANCE_INGEST__DEFAULT_TENANT", TENANT)
    monkeypatch.setenv("CLEARANCE_INGEST__ISOLATE_PARSING", "false")  # the gate's run parses in-process
    if target.backend == "postgresql":
        monkeypatch.setenv("CLEARANCE_STORE__URL", target.url)
        monkeypatch.setenv("CLEARANCE_STORE__SCHEMA_NAME", target.schema or "")
        return target
    return StoreTarget(backend="sqlite", url=f"sqlite+pysqlite:///{tmp_path / 'data' / 'state.db'}")


@pytest.fixture()
def opened(configured: StoreTarget) -> Iterator[Store]:
    store = configured.open()
    try:
        yield store
    finally:
        store.close()


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["prompts", *args])


def v2_file(tmp_path: Path) -> Path:
    path = tmp_path / "v2.toml"
    path.write_text(to_toml(version("v2")), encoding="utf-8")
    return path


def admin_records(store: Store) -> list[Any]:
    records = store.reader.export(AuditQuery(tenant_id=TENANT, kinds=(RecordKind.ADMIN,)))
    return [r for r in records if r.action.startswith("prompt.")]


def test_add_list_show_diff_activate_and_roll_back(configured: StoreTarget, opened: Store, tmp_path: Path) -> None:
    added = run("add", str(v2_file(tmp_path)))
    assert added.exit_code == 0, added.output
    assert run("add", str(v2_file(tmp_path))).exit_code == 2  # immutable: the same label again is refused
    listed = json.loads(run("list", "--json").stdout)
    assert [(p["id"], p["active"], p["builtin"]) for p in listed] == [
        ("grounded-answer/v1", True, True),
        ("grounded-answer/v2", False, False),
    ]
    shown = run("show", GROUNDED_ANSWER, "v1")
    assert shown.exit_code == 0 and shown.stdout == to_toml(GROUNDED_ANSWER_V1)
    diff = run("diff", GROUNDED_ANSWER, "v1", "v2").stdout
    assert "-  Write one to four short sentences.\n+  Write one to three short sentences.\n" in diff
    # Without the gate only by force, and force only with a reason.
    assert run("activate", GROUNDED_ANSWER, "v2", "--no-gate").exit_code == 2
    assert run("activate", GROUNDED_ANSWER, "v2", "--no-gate", "--force").exit_code == 2
    forced = run("activate", GROUNDED_ANSWER, "v2", "--no-gate", "--force", "--reason", "urgent wording fix")
    assert forced.exit_code == 0, forced.output
    assert opened.prompt_source.active(TENANT, GROUNDED_ANSWER).id == "grounded-answer/v2"  # no restart
    rolled = run("rollback", GROUNDED_ANSWER, "--reason", "answers got worse")
    assert rolled.exit_code == 0, rolled.output
    assert opened.prompt_source.active(TENANT, GROUNDED_ANSWER) == GROUNDED_ANSWER_V1
    history = json.loads(run("history", GROUNDED_ANSWER, "--json").stdout)
    assert history["active"] == "grounded-answer/v1"
    assert [(h["action"], h["version"], h["gate"]) for h in history["history"]] == [
        ("activate", "v2", "forced"),
        ("rollback", "v1", "rollback"),
    ]
    records = admin_records(opened)
    assert [r.action for r in records] == ["prompt.add", "prompt.activate", "prompt.rollback"]
    assert all(r.actor.startswith("cli:") for r in records)
    assert records[1].personal["private"] == {"reason": "urgent wording fix"}
    assert records[1].record["detail"]["summary"] == {"via": "cli", "gate": "not run"}


def test_a_tenant_is_required_and_another_tenants_version_is_not_found(
    configured: StoreTarget, opened: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("add", str(v2_file(tmp_path)))
    other = "d397c693-4a32-47ad-9ee4-9ad621108730"
    assert run("show", GROUNDED_ANSWER, "v2", "--tenant", other).exit_code == 2
    assert (
        run("activate", GROUNDED_ANSWER, "v2", "--tenant", other, "--no-gate", "--force", "--reason", "x").exit_code
        == 2
    )
    monkeypatch.delenv("CLEARANCE_INGEST__DEFAULT_TENANT")
    assert "--tenant is required" in run("list").output


def test_gate_refuses_a_baseline_it_cannot_compare_with_before_running(
    configured: StoreTarget, opened: Store, tmp_path: Path
) -> None:
    """The committed baseline holds 833 items; two questions cannot be compared with it: refused, audited."""
    run("add", str(v2_file(tmp_path)))
    refused = run("activate", GROUNDED_ANSWER, "v2", "--questions", str(small_questions(tmp_path)))
    assert refused.exit_code == 1, refused.output
    assert "would not be comparable" in refused.output and "refused" in refused.output
    assert opened.prompt_source.active(TENANT, GROUNDED_ANSWER) == GROUNDED_ANSWER_V1
    [_add, refusal] = admin_records(opened)
    assert refusal.action == "prompt.activate" and refusal.outcome == "refused"
    assert refusal.record["detail"]["summary"]["run"] == "not run"


def small_questions(tmp_path: Path) -> Path:
    entries = json.loads((REPO_ROOT / "samples" / "questions.json").read_text(encoding="utf-8"))[:2]
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


@pytest.mark.parametrize("target", ["sqlite"], indirect=True)  # the gate's run uses a scratch store either way
def test_gate_runs_the_candidate_passes_refuses_a_regression_and_force_is_audited(
    configured: StoreTarget, opened: Store, tmp_path: Path
) -> None:
    questions = small_questions(tmp_path)
    baseline = tmp_path / "baseline.json"
    measured = CliRunner().invoke(
        app,
        ["eval", "--questions", str(questions), "--query-cache", "as-configured", "--out", str(tmp_path / "e.json"),
         "--save-baseline", str(baseline)],
    )  # fmt: skip
    assert measured.exit_code == 0, measured.output
    run("add", str(v2_file(tmp_path)))
    gate = ["--questions", str(questions), "--baseline", str(baseline)]
    passed = run("activate", GROUNDED_ANSWER, "v2", *gate)
    assert passed.exit_code == 0, passed.output
    assert "gate passed" in passed.output and "extractive and reads no prompt" in passed.output
    assert opened.prompt_source.active(TENANT, GROUNDED_ANSWER).id == "grounded-answer/v2"
    # A baseline better than anything this run can reach: the gate must refuse.
    better = json.loads(baseline.read_text(encoding="utf-8"))
    better["metrics"]["overall"]["resolved_safely"] = 1.5
    baseline.write_text(json.dumps(better), encoding="utf-8")
    run("rollback", GROUNDED_ANSWER)
    refused = run("activate", GROUNDED_ANSWER, "v2", *gate)
    assert refused.exit_code == 1 and "overall.resolved_safely: fell from 1.5" in refused.output
    assert opened.prompt_source.active(TENANT, GROUNDED_ANSWER) == GROUNDED_ANSWER_V1
    forced = run("activate", GROUNDED_ANSWER, "v2", *gate, "--force", "--reason", "baseline is stale")
    assert forced.exit_code == 0, forced.output
    records = admin_records(opened)
    assert [(r.action, r.outcome, r.record["detail"].get("gate")) for r in records] == [
        ("prompt.add", "ok", None),
        ("prompt.activate", "ok", "passed"),
        ("prompt.rollback", "ok", "rollback"),
        ("prompt.activate", "refused", "refused"),
        ("prompt.activate", "ok", "forced"),
    ]
    summary = records[-1].record["detail"]["summary"]
    assert summary["candidate"] == "grounded-answer/v2" and summary["prompt_visible_to_generator"] is False
    assert any("resolved_safely" in line for line in summary["found"])
    assert records[-1].personal["private"] == {"reason": "baseline is stale"}
