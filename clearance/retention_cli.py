"""``clearance retention``: apply the retention policy now, or forget a user, from the operator's command line.

The operator reaches the store directly (its URL is in the settings), so these
commands act on every tenant (``run``) or on the tenant named (``forget-user``);
what they do is audited with ``cli:<os user>`` as the actor.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from clearance.settings import Settings
from clearance.store_cli import operator
from core.errors import ClearanceError

if TYPE_CHECKING:
    from store.retention import RetentionReport

retention_app = typer.Typer(
    help="Retention: delete what is older than each kind's window; forget a user.", no_args_is_help=True
)
console = Console(soft_wrap=True, stderr=True)  # stdout carries data (--json)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError names the setting
        raise _fail(f"invalid settings: {exc}") from None


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be removed; change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON on stdout")] = False,
) -> None:
    """Remove conversations, feedback, review items and audit records older than their windows (CLEARANCE_RETENTION__*).

    Audit records are cut from the oldest end of each tenant's chain behind a
    checkpoint, so `clearance audit verify` still passes; a chain that does not
    verify is left whole and reported (exit 1).
    """
    from clearance.compose import build_store
    from clearance.retention_job import build_retention

    settings = _settings()
    try:
        store = build_store(settings, migrate=False)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        report = build_retention(settings, store).run(actor=operator(), dry_run=dry_run)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        for outcome in report.kinds:
            window = f"{outcome.days:g} days" if outcome.days else "kept forever"
            console.print(f"{outcome.kind.value}: {verb} {outcome.removed} ({window})", highlight=False)
        for chain in report.refused:
            console.print(f"[red]audit chain left whole, it does not verify:[/red] {chain.refused}", highlight=False)
    if report.refused:
        raise typer.Exit(code=1)


@retention_app.command("forget-user")
def forget_user(
    tenant: Annotated[str, typer.Option("--tenant", help="the user's tenant id")],
    user: Annotated[str, typer.Option("--user", help="the user's object id")],
) -> None:
    """Delete a user's conversations, feedback and review items; pseudonymise their audit records (audited)."""
    from acl.principal import normalize_id
    from clearance.compose import build_store
    from clearance.retention_job import build_retention

    settings = _settings()
    try:
        tenant_id, object_id = normalize_id(tenant, "tenant"), normalize_id(user, "user")
        store = build_store(settings, migrate=False)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        report = build_retention(settings, store).forget_user(
            tenant_id=tenant_id, object_id=object_id, actor=operator()
        )
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    removed = ", ".join(f"{count} {kind}" for kind, count in report.removed.items())
    console.print(f"forgotten: {removed}; {report.audit_records} audit records pseudonymised", highlight=False)


def _report_json(report: RetentionReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "at": report.at,
        "kinds": {
            outcome.kind.value: {"days": outcome.days, "cutoff": outcome.cutoff, "removed": outcome.removed}
            for outcome in report.kinds
        },
        "audit_chains": [
            {"tenant_id": c.chain, "removed": c.removed, "through_seq": c.through_seq, "refused": c.refused}
            for c in report.chains
        ],
    }
