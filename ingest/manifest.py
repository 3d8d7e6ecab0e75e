"""ACL manifests of the filesystem source (a public contract, see README).

A folder's ``.acl.json`` applies to everything below it unless a deeper
``.acl.json`` or a file's sidecar ``<file name>.acl.json`` says otherwise::

    {"allow": ["group:<object id>", "user:<object id>", "tenant"],
     "deny": ["user:<object id>"],
     "inherit": false}

Object ids are GUIDs in any letter case, stored lower case and qualified with
the source's tenant id. This module reads manifests strictly and finds the ones
that govern a file; how they combine is decided in :mod:`ingest.acl_decision`.

A manifest that exists but cannot be trusted is a :class:`ManifestProblem`,
never "no manifest": not a regular file (folder, FIFO, any symbolic link),
unreadable, not UTF-8 JSON, duplicate or unknown keys, wrong types, entries
that are not ``tenant``/``user:<GUID>``/``group:<GUID>``; and so is a sidecar
whose name differs from ``<file name>.acl.json`` only in letter case or Unicode
normalisation (canonical caseless match). Any name ending in ``.acl.json`` in
any case is a manifest, never a document.
"""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acl.principal import group_key, is_valid_id, tenant_key, user_key
from core.errors import ManifestError
from ingest.acl_decision import AclDecision, EntryKind, LevelReading, ManifestLevel, ManifestProblem, decide_acl
from ingest.jobs import safe_text

FOLDER_MANIFEST = ".acl.json"
SIDECAR_SUFFIX = ".acl.json"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few lines; a bound keeps a mistake from becoming a stall
_KNOWN_FIELDS = {"allow", "deny", "inherit"}


def manifest_key(name: str) -> str:
    """A name folded for comparison (canonical caseless): letter case and NFC/NFD do not count."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def is_manifest(path: Path | str) -> bool:
    """Manifests are configuration, never documents; the suffix counts in any case or normalisation."""
    name = path.name if isinstance(path, Path) else path
    return manifest_key(name).endswith(SIDECAR_SUFFIX)


def read_manifest(path: Path, *, tenant_id: str, label: str | None = None) -> ManifestLevel:
    """Parse one manifest; any problem is a ManifestError naming the file (as ``label``) and the field."""
    label = label or safe_text(path.name)
    text = _read_regular_file(path, label)
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        raise ManifestError(f"{label}: duplicate key {exc.key!r}") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{label}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"{label}: must be a JSON object")
    unknown = set(raw) - _KNOWN_FIELDS
    if unknown:
        raise ManifestError(f"{label}: unknown field(s) {sorted(unknown)}")
    inherit = raw.get("inherit", False)
    if not isinstance(inherit, bool):
        raise ManifestError(f"{label}: 'inherit' must be true or false")
    return ManifestLevel(
        allow=_keys(raw.get("allow", []), "allow", label, tenant_id),
        deny=_keys(raw.get("deny", []), "deny", label, tenant_id),
        inherit=inherit,
        source=label,
    )


def _read_regular_file(path: Path, label: str) -> str:
    # lstat first: a FIFO must never be opened (it blocks) and a link is never followed.
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ManifestError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ManifestError(f"{label}: is {_kind_of(info.st_mode)}, not a regular file")
    if info.st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{label}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        # O_NOFOLLOW/O_NONBLOCK close the window between lstat and open (a swap to a link or FIFO).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ManifestError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ManifestError(f"{label}: is not a regular file")
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{label}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{label}: not UTF-8 text") from exc


def _kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a special file"


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys, so {"deny": [x], "deny": []} would drop a deny.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _keys(entries: object, field: str, label: str, tenant_id: str) -> frozenset[str]:
    if not isinstance(entries, list):
        raise ManifestError(f"{label}: '{field}' must be a list")
    return frozenset(_entry_key(entry, field, label, tenant_id) for entry in entries)


def _entry_key(entry: object, field: str, label: str, tenant_id: str) -> str:
    if entry == "tenant":
        return tenant_key(tenant_id)
    shown = _shorten(repr(entry))
    if isinstance(entry, str) and entry.startswith(("user:", "group:")):
        kind, _, object_id = entry.partition(":")
        if not is_valid_id(object_id):
            raise ManifestError(f"{label}: '{field}' entry {shown}: the object id is not a GUID")
        return user_key(tenant_id, object_id) if kind == "user" else group_key(tenant_id, object_id)
    raise ManifestError(f"{label}: '{field}' entry {shown} is not 'tenant', 'user:<object id>' or 'group:<object id>'")


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def governing_manifests(document_path: str) -> tuple[str, ...]:
    """Where manifests for a document (a '/'-separated path relative to the root) are looked for, root first.

    Each folder's ``.acl.json`` from the root down, then the sidecar: the places an
    admin can put one when a file has none (explanations; :class:`ManifestResolver`
    reads the same places).
    """
    folders = document_path.split("/")[:-1]
    places = [FOLDER_MANIFEST]
    places.extend("/".join(folders[: depth + 1]) + "/" + FOLDER_MANIFEST for depth in range(len(folders)))
    places.append(document_path + SIDECAR_SUFFIX)
    return tuple(places)


class ManifestResolver:
    """Finds and reads the manifests that govern files below one root, each folder once.

    Folders are listed (never probed with ``is_file``, which follows links), so
    a manifest that is a link, a folder or a FIFO is found and refused, and a
    near-miss name is noticed.
    """

    def __init__(self, *, root: Path, tenant_id: str) -> None:
        self._root = root
        self._tenant_id = tenant_id
        self._listings: dict[Path, _Listing | ManifestProblem] = {}
        self._folder_levels: dict[Path, LevelReading | None] = {}

    def decide(self, file_path: Path) -> AclDecision:
        """The decision for a regular file below the root (callers check the entry kind first)."""
        levels = [self._folder_level(folder) for folder in self._chain(file_path.parent)]
        levels.append(self._sidecar_level(file_path))
        return decide_acl(kind=EntryKind.REGULAR_FILE, levels=[level for level in levels if level is not None])

    def _chain(self, folder: Path) -> list[Path]:
        # From the root down, without recursion: deep trees must not hit the interpreter's limit.
        chain = [self._root]
        for part in folder.relative_to(self._root).parts:
            chain.append(chain[-1] / part)
        return chain

    def _folder_level(self, folder: Path) -> LevelReading | None:
        if folder not in self._folder_levels:
            listing = self._listing(folder)
            self._folder_levels[folder] = (
                listing if isinstance(listing, ManifestProblem) else self._read(folder, listing, FOLDER_MANIFEST)
            )
        return self._folder_levels[folder]

    def _sidecar_level(self, file_path: Path) -> LevelReading | None:
        folder, expected = file_path.parent, file_path.name + SIDECAR_SUFFIX
        listing = self._listing(folder)
        if isinstance(listing, ManifestProblem):
            return listing
        near = listing.near_misses(expected)
        if near:
            # Which of the look-alikes was meant cannot be known, so the file waits for a rename.
            near_label = self._label(folder / near[0])
            return ManifestProblem(
                f"{near_label}: differs from '{safe_text(expected)}' only in letter case or "
                "Unicode normalisation; rename it to apply it",
                source=near_label,
            )
        return self._read(folder, listing, expected)

    def _read(self, folder: Path, listing: _Listing, expected: str) -> LevelReading | None:
        if expected not in listing.names:
            return None
        path = folder / expected
        label = self._label(path)
        try:
            return read_manifest(path, tenant_id=self._tenant_id, label=label)
        except ManifestError as exc:
            return ManifestProblem(str(exc), source=label)

    def _listing(self, folder: Path) -> _Listing | ManifestProblem:
        if folder in self._listings:
            return self._listings[folder]
        try:
            found: _Listing | ManifestProblem = _Listing.of(os.listdir(folder))
        except OSError as exc:
            # Without a listing nobody can say which manifest applies here.
            label = self._label(folder)
            found = ManifestProblem(
                f"{label}: folder cannot be listed ({exc.strerror or type(exc).__name__})", source=label
            )
        self._listings[folder] = found
        return found

    def _label(self, path: Path) -> str:
        relative = path.relative_to(self._root).as_posix()
        return safe_text(relative if relative != "." else path.name)


@dataclass(frozen=True, slots=True)
class _Listing:
    """One folder's entry names, with its manifest-like names grouped by folded name."""

    names: frozenset[str]
    manifests: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, names: list[str]) -> _Listing:
        manifests: dict[str, list[str]] = {}
        for name in sorted(names):
            if is_manifest(name):
                manifests.setdefault(manifest_key(name), []).append(name)
        return cls(names=frozenset(names), manifests={key: tuple(group) for key, group in manifests.items()})

    def near_misses(self, expected: str) -> list[str]:
        """Names that fold to ``expected`` without being it (even the exact sidecar of a twin file)."""
        return [name for name in self.manifests.get(manifest_key(expected), ()) if name != expected]
