"""``clearance prompts``: list, show, diff, add, activate (through the evaluation gate) and roll back prompt versions.

The operator reaches the store directly, for any tenant (``--tenant``, default
``CLEARANCE_INGEST__DEFAULT_TENANT``); every change is an admin record in that
tenant's audit chain with ``cli:<os user>`` as the actor. Activation runs the
evaluation gate first (see :mod:`clearance.prompt_gate`) and is refused on a
regression (exit 1, the refusal audited) unless ``--force --reason`` is given;
the forced activation, its reason and what the gate found are audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clearance.settings import Settings
from clearance.store_cli import operator
from core.errors import ClearanceError

if TYPE_CHECKING:
    from store.prompts import PromptStore

prompts_app = typer.Typer(help="Versioned prompts: list, show, diff, add, activate, roll back.", no_args_is_help=True)
console = Console(soft_wrap=True, stderr=True)  # stdout carries data (show, diff, --json)

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="tenant id (default: CLEARANCE_INGEST__DEFAULT_TENANT)")
]
NameArgument = Annotated[str, typer.Argument(help="prompt name, e.g. grounded-answer")]


def _fail(message: str, *, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code=code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}") from None


def _tenant(settings: Settings, tenant: str | None) -> str:
    from acl.principal import normalize_id

    chosen = tenant or settings.ingest.default_tenant
    if not chosen:
        raise _fail("--tenant is required (or set CLEARANCE_INGEST__DEFAULT_TENANT)")
    try:
        return normalize_id(chosen, "tenant")
    except ValueError as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _prompts(settings: Settings) -> Iterator[PromptStore]:
    from clearance.compose import build_store

    try:
        store = build_store(settings)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        yield store.prompts
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()


@prompts_app.command("list")
def prompts_list(
    tenant: TenantOption = None,
    name: Annotated[str | None, typer.Option("--name", help="only this prompt")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """The versions a tenant can use (built-in and its own), the active one marked."""
    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    with _prompts(settings) as prompts:
        versions = prompts.versions(tenant_id=tenant_id, name=name)
        active = {
            v.template.name: prompts.active(tenant_id=tenant_id, name=v.template.name).template.id for v in versions
        }
    rows: list[dict[str, Any]] = [
        {
            "id": v.template.id,
            "active": active[v.template.name] == v.template.id,
            "builtin": v.builtin,
            "digest": v.digest[:12],
            "description": v.template.description,
        }
        for v in versions
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("", "version", "origin", "digest", "description")
    for row in rows:
        table.add_row(
            "*" if row["active"] else "",
            str(row["id"]),
            "built-in" if row["builtin"] else "tenant",
            str(row["digest"]),
            str(row["description"]),
        )
    Console(soft_wrap=True).print(table)


@prompts_app.command("show")
def prompts_show(name: NameArgument, version: str, tenant: TenantOption = None) -> None:
    """One version as a prompt file (what `clearance prompts add` reads)."""
    from retrieval.prompt_files import to_toml

    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    with _prompts(settings) as prompts:
        stored = prompts.get(tenant_id=tenant_id, name=name, version=version)
    typer.echo(to_toml(stored.template), nl=False)


@prompts_app.command("diff")
def prompts_diff(name: NameArgument, old: str, new: str, tenant: TenantOption = None) -> None:
    """Unified diff from version OLD to NEW (texts split after each sentence)."""
    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    with _prompts(settings) as prompts:
        text = prompts.diff(tenant_id=tenant_id, name=name, old=old, new=new)
    typer.echo(text or f"{name}/{old} and {name}/{new} send the same text", nl=not text)


@prompts_app.command("history")
def prompts_history(
    name: NameArgument,
    tenant: TenantOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Every activation and rollback, oldest first, and the active version."""
    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    with _prompts(settings) as prompts:
        active = prompts.active(tenant_id=tenant_id, name=name).template.id
        history = prompts.history(tenant_id=tenant_id, name=name)
    rows = [
        {
            "seq": a.seq,
            "action": a.action,
            "version": a.version,
            "previous": a.previous,
            "gate": a.gate,
            "actor": a.actor,
        }
        for a in history
    ]
    if as_json:
        typer.echo(json.dumps({"active": active, "history": rows}, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['seq']:>4} {row['action']:<9} {row['previous']} -> {row['version']}  "
            f"gate {row['gate']}  by {row['actor']}"
        )
    typer.echo(f"active: {active}")


@prompts_app.command("add")
def prompts_add(
    file: Annotated[Path, typer.Argument(help="a prompt file (TOML: name, version, system, user, description)")],
    tenant: TenantOption = None,
) -> None:
    """Store a new version for a tenant; it is not active until activated."""
    from retrieval.prompt_files import read_prompt_file
    from retrieval.prompt_template import PromptTemplateError

    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    try:
        prompt_file = read_prompt_file(file)
    except PromptTemplateError as exc:
        raise _fail(str(exc)) from None
    with _prompts(settings) as prompts:
        stored = prompts.add(prompt_file.template, tenant_id=tenant_id, actor=operator())
    console.print(f"added {stored.template.id} (digest {stored.digest[:12]}) for tenant {tenant_id}", highlight=False)


@prompts_app.command("activate")
def prompts_activate(
    name: NameArgument,
    version: str,
    tenant: TenantOption = None,
    force: Annotated[bool, typer.Option("--force", help="activate despite a failing (or skipped) gate")] = False,
    reason: Annotated[str, typer.Option("--reason", help="why (required with --force); audited")] = "",
    gate: Annotated[
        bool, typer.Option("--gate/--no-gate", help="run the evaluation gate first (--no-gate needs --force)")
    ] = True,
    baseline: Annotated[Path | None, typer.Option(help="the report the gate compares with")] = None,
    tolerances: Annotated[Path | None, typer.Option(help="the checks the gate applies")] = None,
    questions: Annotated[Path | None, typer.Option(help="persona set (default: samples/questions.json)")] = None,
) -> None:
    """Make VERSION the tenant's active prompt from its next answer on, through the evaluation gate.

    The gate answers the persona set with VERSION and the configured generator and
    compares with the baseline; a regression refuses the activation (exit 1)
    unless --force --reason is given.
    """
    from clearance.prompt_gate import DEFAULT_BASELINE, DEFAULT_TOLERANCES, run_prompt_gate
    from store.prompts import Acceptance, Gate

    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    if force and not reason.strip():
        raise _fail("--force needs --reason: why this version goes live without (or despite) the gate")
    if not gate and not force:
        raise _fail("--no-gate needs --force and --reason")
    with _prompts(settings) as prompts:
        candidate = prompts.get(tenant_id=tenant_id, name=name, version=version).template
        summary: dict[str, Any] = {"via": "cli", "gate": "not run"}
        passed = False
        if gate:
            console.print(f"evaluation gate: answering the persona set with {candidate.id} ...", highlight=False)
            try:
                verdict = run_prompt_gate(
                    settings,
                    candidate,
                    baseline=baseline or DEFAULT_BASELINE,
                    tolerances=tolerances or DEFAULT_TOLERANCES,
                    questions=questions,
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise _fail(f"the evaluation gate could not run: {exc}") from exc
            summary = {"via": "cli", **verdict.summary}
            if verdict.note:
                console.print(f"[yellow]note:[/yellow] {verdict.note}", highlight=False)
            passed = verdict.passed
            if passed:
                console.print("[green]gate passed[/green]: no regression against the baseline", highlight=False)
            else:
                console.print(f"[red]gate found {len(verdict.regressions)} regression(s):[/red]", highlight=False)
                for line in verdict.regressions:
                    console.print(f"  {line}", markup=False, highlight=False)
                summary["found"] = list(verdict.regressions)[:20]
                if not force:
                    prompts.record_refusal(
                        tenant_id=tenant_id, name=name, version=version, actor=operator(), summary=summary
                    )
                    console.print(f"refused: {candidate.id} is not active (use --force --reason to override)")
                    raise typer.Exit(code=1)
        acceptance = Acceptance(gate=Gate.PASSED if passed else Gate.FORCED, summary=summary, reason=reason)
        activation = prompts.activate(
            tenant_id=tenant_id, name=name, version=version, actor=operator(), acceptance=acceptance
        )
    console.print(
        f"{name}/{activation.version} active for tenant {tenant_id} "
        f"(was {activation.previous}; gate {activation.gate})",
        highlight=False,
    )


@prompts_app.command("rollback")
def prompts_rollback(
    name: NameArgument,
    tenant: TenantOption = None,
    reason: Annotated[str, typer.Option("--reason", help="why; audited")] = "",
) -> None:
    """Return to the version that was active before the current activation (not gated: it was accepted before)."""
    settings = _settings()
    tenant_id = _tenant(settings, tenant)
    with _prompts(settings) as prompts:
        activation = prompts.rollback(tenant_id=tenant_id, name=name, actor=operator(), reason=reason)
    console.print(
        f"rolled back: {name}/{activation.version} active for tenant {tenant_id} (was {activation.previous})",
        highlight=False,
    )
