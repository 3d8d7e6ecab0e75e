"""ACL manifests of the filesystem source (a public contract, see README).

A folder's ``.acl.json`` applies to everything below it unless a deeper
``.acl.json`` or a file's sidecar ``<file name>.acl.json`` says otherwise::

    {"allow": ["group:<object id>", "user:<object id>", "tenant"],
     "deny": ["user:<object id>"],
     "inherit": false}

``"inherit": true`` adds the parent level's entries to this level's. Entries are
turned into tenant-qualified keys with the source's tenant id. A file with no
manifest anywhere above it has no ACL and is visible to nobody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from acl.access import AccessList
from acl.principal import group_key, is_valid_id, tenant_key, user_key
from core.errors import ManifestError

FOLDER_MANIFEST = ".acl.json"
SIDECAR_SUFFIX = ".acl.json"
_KNOWN_FIELDS = {"allow", "deny", "inherit"}


def is_manifest(path: Path) -> bool:
    """Manifests are configuration, never documents."""
    return path.name == FOLDER_MANIFEST or path.name.endswith(SIDECAR_SUFFIX)


@dataclass(frozen=True, slots=True)
class ManifestLevel:
    """The entries of one manifest file, already turned into keys."""

    allow: frozenset[str]
    deny: frozenset[str]
    inherit: bool


def read_manifest(path: Path, *, tenant_id: str) -> ManifestLevel:
    """Parse one manifest; any problem is a ManifestError naming the file and the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path.name}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"{path.name}: must be a JSON object")
    unknown = set(raw) - _KNOWN_FIELDS
    if unknown:
        raise ManifestError(f"{path.name}: unknown field(s) {sorted(unknown)}")
    inherit = raw.get("inherit", False)
    if not isinstance(inherit, bool):
        raise ManifestError(f"{path.name}: 'inherit' must be true or false")
    return ManifestLevel(
        allow=_keys(raw.get("allow", []), "allow", path, tenant_id),
        deny=_keys(raw.get("deny", []), "deny", path, tenant_id),
        inherit=inherit,
    )


def _keys(entries: object, field: str, path: Path, tenant_id: str) -> frozenset[str]:
    if not isinstance(entries, list):
        raise ManifestError(f"{path.name}: '{field}' must be a list")
    keys: set[str] = set()
    for entry in entries:
        keys.add(_entry_key(entry, field, path, tenant_id))
    return frozenset(keys)


def _entry_key(entry: object, field: str, path: Path, tenant_id: str) -> str:
    if entry == "tenant":
        return tenant_key(tenant_id)
    if isinstance(entry, str) and ":" in entry:
        kind, _, object_id = entry.partition(":")
        if is_valid_id(object_id):
            if kind == "user":
                return user_key(tenant_id, object_id)
            if kind == "group":
                return group_key(tenant_id, object_id)
    raise ManifestError(
        f"{path.name}: '{field}' entry {entry!r} is not 'tenant', 'user:<object id>' or 'group:<object id>'"
    )


class ManifestResolver:
    """Computes effective ACLs below one root, reading each manifest once."""

    def __init__(self, *, root: Path, tenant_id: str) -> None:
        self._root = root
        self._tenant_id = tenant_id
        self._folder_cache: dict[Path, AccessList | None] = {}

    def effective_acl(self, file_path: Path) -> AccessList | None:
        """The file's ACL, or None when no manifest applies (visible to nobody)."""
        inherited = self._folder_acl(file_path.parent)
        sidecar = file_path.with_name(file_path.name + SIDECAR_SUFFIX)
        if sidecar.is_file():
            return _apply(inherited, read_manifest(sidecar, tenant_id=self._tenant_id))
        return inherited

    def _folder_acl(self, folder: Path) -> AccessList | None:
        if folder in self._folder_cache:
            return self._folder_cache[folder]
        parent = None if folder == self._root else self._folder_acl(folder.parent)
        manifest = folder / FOLDER_MANIFEST
        acl = _apply(parent, read_manifest(manifest, tenant_id=self._tenant_id)) if manifest.is_file() else parent
        self._folder_cache[folder] = acl
        return acl


def _apply(parent: AccessList | None, level: ManifestLevel) -> AccessList:
    if level.inherit and parent is not None:
        return AccessList(allow=parent.allow | level.allow, deny=parent.deny | level.deny)
    return AccessList(allow=level.allow, deny=level.deny)
