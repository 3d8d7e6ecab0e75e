"""The Teams app package: manifest.json from the template and settings, two icons, and the zip Teams uploads."""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from clearance.settings import TeamsSettings

TEMPLATE = Path(__file__).with_name("manifest.template.json")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ACCENT = (0x1F, 0x4E, 0x79)


@dataclass(frozen=True)
class AppPackage:
    manifest: Path
    color_icon: Path
    outline_icon: Path
    zip_file: Path


def render_manifest(settings: TeamsSettings) -> dict[str, object]:
    """The manifest for this bot; refuses settings Teams would reject on upload."""
    if not _GUID.match(settings.app_id):
        raise ValueError("CLEARANCE_TEAMS__APP_ID must be the bot's Entra app id (a GUID)")
    resource = settings.sso_resource or (f"api://{settings.domains[0]}/{settings.app_id}" if settings.domains else "")
    if not resource.startswith("api://"):
        raise ValueError("set CLEARANCE_TEAMS__SSO_RESOURCE (api://<domain>/<app id>) or CLEARANCE_TEAMS__DOMAINS")
    values = {
        "app_id": settings.app_id.lower(),
        "version": settings.version,
        "name": settings.name,
        "description": settings.description,
        "developer_name": settings.developer_name,
        "website_url": settings.website_url,
        "privacy_url": settings.privacy_url,
        "terms_url": settings.terms_url,
        "sso_resource": resource,
    }
    # Values go in JSON-escaped, so a quote in a name cannot change the manifest's structure.
    escaped = {key: json.dumps(value)[1:-1] for key, value in values.items()}
    manifest: dict[str, object] = json.loads(Template(TEMPLATE.read_text(encoding="utf-8")).substitute(escaped))
    manifest["validDomains"] = list(dict.fromkeys(settings.domains))
    return manifest


def write_package(settings: TeamsSettings, out: Path) -> AppPackage:
    out.mkdir(parents=True, exist_ok=True)
    package = AppPackage(
        manifest=out / "manifest.json",
        color_icon=out / "color.png",
        outline_icon=out / "outline.png",
        zip_file=out / f"{settings.name.lower().replace(' ', '-')}-teams-app.zip",
    )
    package.manifest.write_text(json.dumps(render_manifest(settings), indent=2) + "\n", encoding="utf-8")
    package.color_icon.write_bytes(_icon(192, background=_ACCENT, mark=(255, 255, 255), opaque=True))
    package.outline_icon.write_bytes(_icon(32, background=(0, 0, 0), mark=(255, 255, 255), opaque=False))
    with zipfile.ZipFile(package.zip_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in (package.manifest, package.color_icon, package.outline_icon):
            archive.write(path, arcname=path.name)  # Teams wants the three files at the zip's root
    return package


def _icon(size: int, *, background: tuple[int, int, int], mark: tuple[int, int, int], opaque: bool) -> bytes:
    """A square RGBA PNG with a ring (a "C"): the color icon opaque, the outline icon white on transparent."""
    rows = []
    centre, outer, inner = (size - 1) / 2, size * 0.40, size * 0.26
    for y in range(size):
        row = bytearray([0])  # filter type: none
        for x in range(size):
            distance = ((x - centre) ** 2 + (y - centre) ** 2) ** 0.5
            in_ring = inner <= distance <= outer and not (x > centre and abs(y - centre) < size * 0.12)
            if in_ring:
                row += bytes([*mark, 255])
            else:
                row += bytes([*background, 255 if opaque else 0])
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
