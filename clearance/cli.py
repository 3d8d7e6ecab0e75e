"""The `clearance` command line: ingest, jobs, serve, ask, demo and development tokens."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clearance.evaluation.cli import evaluate
from clearance.index_migrate import index_app
from clearance.prompts_cli import prompts_app
from clearance.retention_cli import retention_app
from clearance.settings import Mode, Settings, is_loopback_host
from clearance.store_cli import audit_app, db_app
from clearance.teams.cli import teams_app
from core.errors import ClearanceError
from ingest.jobs import FINISHED, JobRecord, JobStatus
from ingest.source import DocumentSource
from retrieval.records import Citation

app = typer.Typer(help="Clearance: permission-aware answers over enterprise documents.", no_args_is_help=True)
jobs_app = typer.Typer(help="Ingestion job records.", no_args_is_help=True)
dev_app = typer.Typer(help="The development identity provider (development mode only).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(index_app, name="index")
app.add_typer(prompts_app, name="prompts")
app.add_typer(teams_app, name="teams")
console = Console(soft_wrap=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError: a setting is wrong; say which, no traceback
        raise _fail(f"invalid settings: {exc}") from None


def _development_settings(command: str) -> Settings:
    """Settings for the local development commands (demo, ask, dev): development mode unless set otherwise.

    These commands are the explicit request for the bundled identity provider; a
    ``CLEARANCE_MODE=production`` set by the operator still wins, and they refuse.
    """
    settings = _settings()
    if "mode" not in settings.model_fields_set:
        settings = settings.model_copy(update={"mode": Mode.DEVELOPMENT})
    if settings.mode is not Mode.DEVELOPMENT:
        raise _fail(f"`clearance {command}` runs in development mode only (CLEARANCE_MODE is {settings.mode.value})")
    return settings


def _check_bind(settings: Settings, host: str) -> None:
    """Development mode mints admin tokens for anyone who asks: it serves loopback only, unless told otherwise."""
    if settings.mode is not Mode.DEVELOPMENT or is_loopback_host(host):
        return
    if settings.server.allow_insecure_development:
        console.print(f"[red]warning:[/red] development mode on {host}: anyone who reaches it can mint admin tokens")
        return
    raise _fail(
        f"development mode serves loopback addresses only (asked for {host}); it mints admin tokens for anyone. "
        "Use production mode, or set CLEARANCE_SERVER__ALLOW_INSECURE_DEVELOPMENT=true on a trusted network."
    )


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=2)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="folder to ingest (with .acl.json manifests)")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="tenant id of the source's ACL entries")] = None,
) -> None:
    """Ingest a folder incrementally: new and changed files are indexed, deleted ones removed.

    A folder below one of the tenant's allowed roots is ingested as part of that
    root (ACLs inherited from above it, one identity per file); any other folder
    is a source of its own.
    """
    from acl.principal import normalize_id
    from clearance.compose import allowed_roots, build_indexing
    from ingest.source import FilesystemSource

    settings = _settings()
    tenant_id = tenant or settings.ingest.default_tenant
    if not tenant_id:
        raise _fail("--tenant is required (or set CLEARANCE_INGEST__DEFAULT_TENANT)")
    try:
        tenant_id = normalize_id(tenant_id, "tenant")
        folder = path.expanduser().resolve()
        roots = allowed_roots(settings).get(tenant_id, [])
        root = next((r.resolve() for r in roots if folder.is_relative_to(r.resolve())), folder)
        source = FilesystemSource(root=root, tenant_id=tenant_id, scope=folder)
        indexing = build_indexing(settings)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        job = _run_with_progress(indexing.pipeline.run, source)
    finally:
        indexing.close()
    _print_job(job)
    if job.status is JobStatus.FAILED:
        raise typer.Exit(code=1)


def _run_with_progress(run: Callable[..., JobRecord], source: DocumentSource) -> JobRecord:
    columns = (
        TextColumn("[bold]ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=None)

        def update(job: JobRecord, path: str | None) -> None:
            progress.update(task, total=job.files_total, completed=job.files_done, description=path or "")

        job: JobRecord = run(source, progress=update)
    return job


def _print_job(job: JobRecord) -> None:
    data = job.to_dict()
    counts = ", ".join(f"{name} {count}" for name, count in data["counts"].items())
    console.print(
        f"[bold]{job.id}[/bold] {job.status.value} in {data['duration_s']} s: {counts}; "
        f"{job.chunks_written} chunks written"
    )
    timings = ", ".join(f"{k} {v:.2f}" for k, v in job.timings.items())
    console.print(f"  timings: {timings}")
    if job.failure:
        console.print(f"  [red]failure:[/red] {job.failure}")
    for issue in job.warnings:
        console.print(f"  [yellow]warning[/yellow] {issue.path}: {issue.reason}")
    for issue in job.errors:
        console.print(f"  [red]error[/red] {issue.path}: {issue.reason}")


@jobs_app.command("list")
def jobs_list(limit: int = 20) -> None:
    """Recent ingestion jobs, newest first (ids in full, at any terminal width)."""
    from clearance.compose import build_store

    store = build_store(_settings())
    try:
        jobs = store.jobs.list(limit=limit)
    finally:
        store.close()
    table = Table(box=None, pad_edge=False)
    # The id is what `jobs show` takes, and the status what one looks for: never cut either; the
    # source gives way instead. The id starts with the job's UTC creation time; `jobs show` gives local times.
    table.add_column("job", no_wrap=True, min_width=len("job-20260101-000000-000000-abcdef"))
    table.add_column("status", no_wrap=True, min_width=max((len(j.status.value) for j in jobs), default=6))
    for name in ("files", "errors", "chunks"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("source", overflow="fold")
    for job in jobs:
        table.add_row(
            job.id,
            job.status.value,
            str(job.files_total),
            str(len(job.errors)),
            str(job.chunks_written),
            job.source,
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: str, as_json: Annotated[bool, typer.Option("--json", help="the raw record as JSON")] = False
) -> None:
    """One job: status, counts, per-file errors and warnings, timings (local times)."""
    from clearance.compose import build_store

    store = build_store(_settings())
    try:
        job = store.jobs.get(job_id)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(job.to_dict(), indent=2))
        return
    console.print(f"source {job.source} (tenant {job.tenant_id})", highlight=False)
    started = _local_time(job.started_at) if job.started_at else "not started"
    finished = _local_time(job.finished_at) if job.finished_at else "not finished"
    console.print(f"started {started}, finished {finished}", highlight=False)
    _print_job(job)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job: a queued one never starts, a running one stops after the files in hand (it polls)."""
    from clearance.compose import build_store
    from clearance.store_cli import operator

    store = build_store(_settings())
    try:
        before = store.jobs.get(job_id).status
        job = store.jobs.request_cancel(job_id)
        store.audit.record_admin_action(
            tenant_id=job.tenant_id,
            actor=operator(),
            action="ingest.job.cancel",
            target=job.id,
            detail={"source": job.source, "status": job.status.value, "route": "cli"},
        )
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    if before in FINISHED:
        console.print(f"{job.id} had already finished ({job.status.value}); nothing to cancel", highlight=False)
    elif job.status is JobStatus.CANCELLED:
        console.print(f"{job.id} cancelled", highlight=False)
    else:
        console.print(f"{job.id} cancel requested: it stops after the files in hand", highlight=False)


def _local_time(stamp: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Start the HTTP API and the web page."""
    _serve(_settings(), host=host, port=port)


def _serve(settings: Settings, *, host: str | None, port: int | None) -> None:
    import uvicorn

    from clearance.compose import build_api

    bind_host, bind_port = host or settings.server.host, port or settings.server.port
    _check_bind(settings, bind_host)
    # The address served is the server's own (the MCP endpoint's resource URL is derived from it).
    server = settings.server.model_copy(update={"host": bind_host, "port": bind_port})
    settings = settings.model_copy(update={"server": server})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_api(settings)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_level="info",
        # Bounded request heads and idle connections; bodies are bounded by the app (api.limits).
        h11_max_incomplete_event_size=16 * 1024,
        timeout_keep_alive=5,
    )


@app.command()
def mcp(
    host: Annotated[str | None, typer.Option(help="bind address (default CLEARANCE_MCP__HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default CLEARANCE_MCP__PORT, 8001)")] = None,
) -> None:
    """Serve the MCP endpoint alone (streamable HTTP at /mcp; `serve` and `demo` already serve it on their port).

    For deployments that run MCP as a process of its own, against a Qdrant server index: an embedded
    index belongs to one process. The `search` and `ask` tools run as the token's owner.
    """
    from clearance.mcp_server import serve_mcp

    settings = _settings()
    bind_host, bind_port = host or settings.mcp.host, port or settings.mcp.port
    _check_bind(settings, bind_host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve_mcp(settings, host=bind_host, port=bind_port)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc


@app.command()
def ask(
    question: str,
    user: Annotated[str, typer.Option("--as", help="sample user to ask as (development mode)")] = "alice",
) -> None:
    """Ask a question as a sample user, through the same token validation as the API.

    When a server is running on the configured address it answers (it holds the
    index, and uses its own generator); otherwise the question is answered here.
    """
    from clearance.compose import build_runtime, load_directory
    from retrieval.records import AnswerResult

    settings = _development_settings("ask")
    try:
        sample = load_directory(settings).user(user)  # an unknown user is refused before any model loads
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    served = _ask_running_server(settings, user, question)
    if served is not None:
        answer, citations, outcome, generator = served
    else:
        try:
            runtime = build_runtime(settings)
        except (ClearanceError, ValueError) as exc:
            raise _fail(f"{exc} (is a server running with a different address?)") from exc
        try:
            dev = runtime.dev
            assert dev is not None  # development mode builds it
            result: AnswerResult = runtime.answers.answer(
                runtime.tokens.authenticate(dev.idp.mint_for(sample)), question
            )
        except ClearanceError as exc:
            raise _fail(str(exc)) from exc
        finally:
            runtime.close()
        answer, outcome, generator = result.answer, result.outcome.value, result.generator
        citations = [_citation_dict(c) for c in result.citations]
    console.print(f"[bold]{answer}[/bold]", highlight=False)
    for citation in citations:
        where = ", ".join(
            str(x) for x in (citation["section"], f"page {citation['page']}" if citation["page"] else None) if x
        )
        console.print(f"  [{citation['id']}] {citation['source']} ({citation['title']}{'; ' + where if where else ''})")
    console.print(f"  [dim]{outcome} by {generator}[/dim]")


def _citation_dict(citation: Citation) -> dict[str, Any]:
    """The fields `ask` prints, in the shape the API returns them, so both paths print alike."""
    return {
        "id": citation.id,
        "source": citation.source,
        "title": citation.title,
        "section": citation.section,
        "page": citation.page,
    }


def _ask_running_server(
    settings: Settings, user: str, question: str
) -> tuple[str, list[dict[str, Any]], str, str] | None:
    """The answer from a server on the configured address, or None when none answers there."""
    import httpx

    base = f"http://{settings.server.host}:{settings.server.port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            token = client.post("/dev/token", json={"user": user})
            if token.status_code != 200:
                return None  # not a development server of ours: answer here
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            reply = client.post("/v1/chat", json={"question": question}, headers=headers)
    except httpx.TransportError:
        return None
    if reply.status_code != 200:
        raise _fail(f"the server at {base} answered {reply.status_code}: {reply.json().get('title', '')}")
    body = reply.json()
    console.print(f"[dim]answered by the server at {base}[/dim]")
    return body["answer"], body["citations"], body["outcome"], body["generator"]


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="ingest only")] = False,
) -> None:
    """Ingest the bundled sample corpus (one folder per sample tenant), then serve."""
    from clearance.compose import build_indexing, load_directory
    from clearance.samples import sample_sources

    settings = _development_settings("demo")
    bind_host, bind_port = host or settings.server.host, port or settings.server.port
    _check_bind(settings, bind_host)
    directory = load_directory(settings)
    indexing = build_indexing(settings)
    try:
        for tenant_id, source in sample_sources(directory).items():
            console.print(f"[bold]{directory.tenant_names[tenant_id]}[/bold] ({tenant_id}) from {source.root}")
            _print_job(_run_with_progress(indexing.pipeline.run, source))
    finally:
        indexing.close()
    console.print(f"\nOpen http://{bind_host}:{bind_port}/ and pick a sample user, or ask from a shell:")
    for user in directory.users:
        console.print(
            f"  {user.name:6} {user.display_name} ({user.title}): TOKEN=$(clearance dev token --user {user.name})"
        )
    console.print(
        f'  curl -s http://{bind_host}:{bind_port}/v1/chat -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' -d '{\"question\": \"What is the travel per diem?\"}'"
    )
    if not no_serve:
        _serve(settings, host=bind_host, port=bind_port)


@app.command()
def worker(verbose: Annotated[bool, typer.Option("--verbose", help="log every queue event")] = False) -> None:
    """Run queued ingestion jobs (queue mode: CLEARANCE_QUEUE__REDIS_URL and a Qdrant server index)."""
    from clearance.worker import worker_command  # imported here: the queue libraries load only for workers

    worker_command(verbose=verbose)


@app.command()
def explain(
    user: Annotated[str, typer.Option("--user", help="object id of the user")],
    tenant: Annotated[str, typer.Option("--tenant", help="tenant id")],
    document: Annotated[str, typer.Option("--document", help="path of the document (under the tenant's root)")],
) -> None:
    """Can this user see this document, and why: the deciding entry, the ACL's origins, stale or not."""
    from clearance.compose import build_explain, build_indexing, load_directory
    from ingest.explain import describe

    settings = _settings()
    try:
        directory = load_directory(settings) if settings.mode is Mode.DEVELOPMENT else None
        indexing = build_indexing(settings)
    except (ClearanceError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    try:
        service = build_explain(settings, indexing=indexing, directory=directory)
        for line in describe(service.explain_user(tenant_id=tenant, object_id=user, document_path=document)):
            console.print(line, highlight=False, markup=False)
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc
    finally:
        indexing.close()


@dev_app.command("token")
def dev_token(
    user: Annotated[str | None, typer.Option(help="sample user name (see `clearance dev users`)")] = None,
    oid: Annotated[str | None, typer.Option(help="object id for arbitrary claims")] = None,
    tid: Annotated[str | None, typer.Option(help="tenant id for arbitrary claims")] = None,
    group: Annotated[list[str] | None, typer.Option(help="group object id (repeatable)")] = None,
    role: Annotated[list[str] | None, typer.Option(help="app role (repeatable)")] = None,
    guest: Annotated[bool, typer.Option(help="mark the account as a guest")] = False,
    lifetime: Annotated[int, typer.Option(help="seconds until expiry")] = 3600,
) -> None:
    """Print a development access token, validated by the API exactly like an Entra ID token."""
    from clearance.compose import build_dev_identity

    settings = _development_settings("dev token")
    try:
        dev = build_dev_identity(settings)
        idp = dev.idp
        if user:
            typer.echo(idp.mint_for(dev.directory.user(user), lifetime_seconds=lifetime))
            return
        if not (oid and tid):
            raise _fail("give --user NAME, or --oid and --tid")
        typer.echo(
            idp.mint(
                tenant_id=tid,
                object_id=oid,
                groups=group or [],
                roles=role or [],
                guest=guest,
                lifetime_seconds=lifetime,
            )
        )
    except ClearanceError as exc:
        raise _fail(str(exc)) from exc


@dev_app.command("users")
def dev_users() -> None:
    """The sample users of the development directory."""
    from clearance.compose import load_directory

    directory = load_directory(_development_settings("dev users"))
    table = Table("user", "name", "tenant", "groups", "roles", "guest")
    for u in directory.users:
        groups = ", ".join(directory.group_names.get(g, g) for g in u.groups[:4])
        if len(u.groups) > 4:
            groups += f" (+{len(u.groups) - 4})"
        table.add_row(
            u.name,
            u.display_name,
            directory.tenant_names.get(u.tenant, u.tenant),
            groups,
            ", ".join(u.roles),
            "yes" if u.guest else "",
        )
    console.print(table)


# `clearance eval`: its options live with the harness (clearance/evaluation/cli.py), which imports nothing heavy.
app.command("eval")(evaluate)


def main() -> None:  # pragma: no cover - console script entry
    # Never reach for a model hub: the weights are on disk or loading fails.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app()
