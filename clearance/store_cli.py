"""``clearance db`` and ``clearance audit``: schema migrations, audit verification and export, for operators.

The operator at the command line reaches the store directly (its URL is in the
settings), so these commands see every tenant's chain; what they read is still
audited: an export is an admin record in the exported tenant's chain, a schema
upgrade one in the system chain, with ``cli:<os user>`` as the actor.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from clearance.settings import Settings
from core.errors import ClearanceError

if TYPE_CHECKING:
    from store.audit_verify import Verification

db_app = typer.Typer(help="The state store's schema (SQLite file or PostgreSQL).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit: verify the chains, export records.", no_args_is_help=True)
console = Console(soft_wrap=True, stderr=True)  # stdout carries data (exports, --json)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError names the setting
        raise _fail(f"invalid settings: {exc}") from None


def _fail(message: str, *, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=code)


def operator() -> str:
    """The actor of a command-line action: the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"cli:uid-{os.getuid()}"


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Apply the schema migrations (what start-up does unless CLEARANCE_STORE__MIGRATE=false)."""
    from clearance.compose import store_url
    from store.audit_log import SYSTEM_CHAIN, AuditLog
    from store.database import Database
    from store.migrate import current_revision, upgrade

    settings = _settings()
    database = Database.open(
        store_url(settings),
        schema=settings.store.schema_name,
        connect_timeout_seconds=settings.store.connect_timeout_seconds,
    )
    try:
        before = current_revision(database)
        upgrade(database, revision=revision)
        after = current_revision(database)
        if after != before:
            AuditLog(database=database).record_admin_action(
                tenant_id=SYSTEM_CHAIN,
                actor=operator(),
                action="db.upgrade",
                detail={"from": before, "to": after},
            )
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        database.dispose()
    change = f"{before or 'empty'} -> {after}" if after != before else f"already at {after}"
    console.print(f"state store {database.safe_url}: {change}", highlight=False)


@db_app.command("current")
def db_current() -> None:
    """The schema revision of the store, and the one this version needs."""
    from clearance.compose import store_url
    from store.database import Database
    from store.migrate import current_revision, head_revision

    settings = _settings()
    database = Database.open(store_url(settings), schema=settings.store.schema_name)
    try:
        found = current_revision(database)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        database.dispose()
    typer.echo(json.dumps({"store": database.safe_url, "current": found, "needed": head_revision()}))


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="verify only these tenants' chains")] = None,
    anchors: Annotated[
        Path | None, typer.Option(help="a JSON file of {tenant: [seq, hash]} saved earlier; each must still match")
    ] = None,
    save_anchors: Annotated[
        Path | None, typer.Option(help="write each chain's head as anchors (keep the file outside the store)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON on stdout")] = False,
) -> None:
    """Re-hash every record of every chain; name the first bad record of each. Exit 1 when any chain is bad."""
    from clearance.compose import build_store
    from store.audit_verify import verify

    settings = _settings()
    try:
        expected = _read_anchors(anchors) if anchors is not None else None
        store = build_store(settings, migrate=False)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        chains = [name.lower() for name in tenant] if tenant else None
        report = verify(store.database, chains=chains, anchors=expected)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    if save_anchors is not None:
        heads = {c.chain: [c.head_seq, c.head_hash] for c in report.chains if c.problem is None and c.head_seq}
        _write_private(save_anchors, json.dumps(heads, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    else:
        for chain in report.chains:
            name = chain.chain or "(system)"
            state = "[green]ok[/green]" if chain.problem is None else "[red]TAMPERED[/red]"
            console.print(f"{state} {name}: {chain.records} records, {chain.erased} erased", highlight=False)
            if chain.problem is not None:
                console.print(f"  first bad record: {chain.problem.describe()}", highlight=False)
        console.print(f"{report.records} records verified in {report.seconds:.2f} s", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


@audit_app.command("export")
def audit_export(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose chain is exported")],
    user: Annotated[str | None, typer.Option(help="only this asker (object id)")] = None,
    document: Annotated[str | None, typer.Option(help="only records that used this document (id or source)")] = None,
    since: Annotated[datetime | None, typer.Option(help="at or after this time (UTC without an offset)")] = None,
    until: Annotated[datetime | None, typer.Option(help="before this time")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="a file (0600); default: stdout")] = None,
) -> None:
    """One tenant's records as JSON lines, oldest first, hashes included. The export is itself audited."""
    from acl.principal import normalize_id
    from api.routes.audit import AuditRecordOut
    from clearance.compose import build_store
    from store.audit_query import AuditQuery

    settings = _settings()
    try:
        query = AuditQuery(
            tenant_id=normalize_id(tenant, "tenant"),
            user=normalize_id(user, "user") if user is not None else None,
            document=document,
            since_us=_microseconds(since),
            until_us=_microseconds(until),
        )
        store = build_store(settings, migrate=False)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        filters = {"user": user, "document": document, "since_us": query.since_us, "until_us": query.until_us}
        used = {name: value for name, value in filters.items() if value is not None}
        store.audit.record_admin_action(
            tenant_id=query.tenant_id,
            actor=operator(),
            action="audit.export",
            detail={"route": "cli", "filters": sorted(used)},
            private=used,
        )
        lines = (AuditRecordOut.of(r).model_dump_json() + "\n" for r in store.reader.export(query))
        if output is None:
            count = sum(sys.stdout.write(line) > 0 for line in lines)
        else:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # questions and principal keys
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                count = sum(handle.write(line) > 0 for line in lines)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    console.print(f"{count} records exported", highlight=False)


def _microseconds(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1_000_000)


def _read_anchors(path: Path) -> dict[str, tuple[int, str]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(chain): (int(seq), str(hashed)) for chain, (seq, hashed) in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not an anchors file ({{tenant: [seq, hash]}}): {exc}") from exc


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _report_json(report: Verification) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "records": report.records,
        "seconds": round(report.seconds, 3),
        "chains": [
            {
                "tenant_id": c.chain,
                "records": c.records,
                "erased": c.erased,
                "head": {"seq": c.head_seq, "hash": c.head_hash},
                "first_bad": None
                if c.problem is None
                else {
                    "seq": c.problem.seq,
                    "id": c.problem.record_id,
                    "kind": c.problem.kind.value,
                    "detail": c.problem.detail,
                },
            }
            for c in report.chains
        ],
    }
