"""`clearance teams serve` and `clearance teams package`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clearance.settings import Settings

teams_app = typer.Typer(help="The Microsoft Teams bot.", no_args_is_help=True)


def _teams_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


@teams_app.command("package")
def package(out: Annotated[Path, typer.Option("--out", help="folder for manifest.json, icons and the zip")]) -> None:
    """Write the Teams app package (manifest plus icons, and the zip to upload) from settings."""
    from clearance.teams.manifest import write_package

    try:
        written = write_package(_teams_settings().teams, out)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for path in (written.manifest, written.color_icon, written.outline_icon, written.zip_file):
        typer.echo(str(path))


@teams_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default CLEARANCE_TEAMS__HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default CLEARANCE_TEAMS__PORT)")] = None,
) -> None:
    """Serve POST /api/messages for the Azure Bot resource (put TLS in front of it)."""
    import uvicorn

    from clearance.teams.compose import build_teams_app

    settings = _teams_settings().teams
    try:
        app = build_teams_app(settings)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="info")
