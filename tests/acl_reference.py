"""A reference implementation of who may read what in a filesystem source: the ACL oracle.

Written from the documented contract alone (README "ACL manifests" and "Access-control model",
DESIGN.md's fail-closed checklist), never from the product's code: it imports nothing from
``ingest/`` or ``acl/``. The property tests ingest a tree with the real pipeline and compare
what each caller can retrieve with what this module says that caller may read.

The contract, as this module implements it:

* Files are walked below the source root. Files and folders whose name starts with ``.`` are
  skipped. A name ending in ``.acl.json`` (in any letter case) is a manifest, never a document.
  A file that is a symbolic link is never indexed, and neither is a file whose name is not
  valid UTF-8. ``.txt`` and ``.md`` files are indexed when they have text.
* Effective ACL: from the root down, each folder's ``.acl.json``, then the file's sidecar
  ``<file name>.acl.json``. A level with ``"inherit": true`` and a parent ACL adds its allow and
  deny entries to the parent's; otherwise (``false``, the default, or no parent) it replaces
  them. No manifest anywhere above a file: nobody may read it.
* A manifest is a JSON object with only the keys ``allow`` (list), ``deny`` (list) and
  ``inherit`` (bool), without duplicate keys; entries are ``"tenant"``, ``"user:<GUID>"`` and
  ``"group:<GUID>"`` (GUID in any letter case, compared lower-case). Anything else, and a
  manifest name that exists but is not a regular file (a directory, a FIFO, any symlink),
  makes the manifest broken. A broken folder manifest makes every file below that folder
  visible to nobody (even under deeper valid manifests); a broken sidecar makes its file
  visible to nobody, and so does a sidecar whose name equals ``<file name>.acl.json`` only
  after case folding or Unicode normalisation.
* Keys: ``user:{tid}/{oid}``, ``group:{tid}/{gid}`` per group and ``tenant:{tid}`` unless the
  caller is a guest, all lower case; manifest entries are qualified with the source's tenant.
  A caller may read a document iff the caller's tenant is the source's, the allow list meets
  the caller's keys and the deny list does not.
"""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST_SUFFIX = ".acl.json"
FOLDER_MANIFEST = ".acl.json"
DOCUMENT_SUFFIXES = (".txt", ".md")
_MANIFEST_KEYS = frozenset({"allow", "deny", "inherit"})
_HEX = frozenset("0123456789abcdef")
_DASHES = (8, 13, 18, 23)


@dataclass(frozen=True, slots=True)
class RefAcl:
    """An effective access list as tenant-qualified, lower-case keys."""

    allow: frozenset[str]
    deny: frozenset[str]


@dataclass(frozen=True, slots=True)
class Level:
    """One valid manifest: its entries as keys, and whether it adds to its parent."""

    allow: frozenset[str]
    deny: frozenset[str]
    inherit: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the identity a token carries, ids in whatever letter case they came in."""

    tenant_id: str
    object_id: str
    groups: tuple[str, ...] = ()
    guest: bool = False
    label: str = ""


# -- identity and the rule ---------------------------------------------------------------


def is_guid(value: object) -> bool:
    """A GUID in any letter case (ASCII hex only; no braces, no whitespace)."""
    if not isinstance(value, str) or len(value) != 36 or not value.isascii():
        return False
    lowered = value.lower()
    return all((char == "-") if index in _DASHES else (char in _HEX) for index, char in enumerate(lowered))


def caller_keys(caller: Caller) -> frozenset[str]:
    tid = caller.tenant_id.lower()
    keys = {f"user:{tid}/{caller.object_id.lower()}"}
    keys.update(f"group:{tid}/{group.lower()}" for group in caller.groups)
    if not caller.guest:
        keys.add(f"tenant:{tid}")
    return frozenset(keys)


def permits(acl: RefAcl | None, keys: frozenset[str]) -> bool:
    """Readable iff allow meets the keys and deny does not; no ACL is nobody."""
    return acl is not None and bool(acl.allow & keys) and not (acl.deny & keys)


def may_read(acl: RefAcl | None, *, source_tenant: str, caller: Caller) -> bool:
    return caller.tenant_id.lower() == source_tenant.lower() and permits(acl, caller_keys(caller))


# -- manifests ----------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen[key] = value
    return seen


def _entry_key(entry: object, tenant: str) -> str | None:
    if entry == "tenant":
        return f"tenant:{tenant}"
    if isinstance(entry, str):
        for kind in ("user", "group"):
            prefix = f"{kind}:"
            if entry.startswith(prefix) and is_guid(entry[len(prefix) :]):
                return f"{kind}:{tenant}/{entry[len(prefix) :].lower()}"
    return None


def _entries(value: object, tenant: str) -> frozenset[str] | None:
    if not isinstance(value, list):
        return None
    keys: set[str] = set()
    for entry in value:
        key = _entry_key(entry, tenant)
        if key is None:
            return None
        keys.add(key)
    return frozenset(keys)


def parse_manifest(data: bytes, *, tenant_id: str) -> Level | None:
    """One manifest's content as a level, or None when it is broken."""
    tenant = tenant_id.lower()
    try:
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or not set(raw) <= _MANIFEST_KEYS:
        return None
    inherit = raw.get("inherit", False)
    if not isinstance(inherit, bool):
        return None
    allow = _entries(raw.get("allow", []), tenant)
    deny = _entries(raw.get("deny", []), tenant)
    if allow is None or deny is None:
        return None
    return Level(allow=allow, deny=deny, inherit=inherit)


class _Broken:
    """The state below a broken folder manifest: everything is visible to nobody."""


BROKEN = _Broken()
State = RefAcl | None | _Broken  # None: no manifest so far


def _read_manifest(path: bytes, *, tenant_id: str) -> Level | _Broken | None:
    """None when there is no manifest at ``path``, BROKEN when it is not a valid regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return BROKEN
    if not stat.S_ISREG(info.st_mode):
        return BROKEN  # a directory, FIFO, device or any symbolic link (broken or not)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return BROKEN
    level = parse_manifest(data, tenant_id=tenant_id)
    return BROKEN if level is None else level


def _apply(parent: State, level: Level | _Broken | None) -> State:
    if isinstance(parent, _Broken) or isinstance(level, _Broken):
        return BROKEN
    if level is None:
        return parent
    if level.inherit and parent is not None:
        return RefAcl(allow=parent.allow | level.allow, deny=parent.deny | level.deny)
    return RefAcl(allow=level.allow, deny=level.deny)


def canonical_name(name: str) -> str:
    """Caseless, normalisation-insensitive form of a name (Unicode canonical caseless match)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def is_manifest_name(name: str) -> bool:
    return name.casefold().endswith(MANIFEST_SUFFIX)


def is_document_name(name: str) -> bool:
    return name.endswith(DOCUMENT_SUFFIXES)


# -- the walk -----------------------------------------------------------------------------


def effective_acls(root: Path, *, tenant_id: str) -> dict[str, RefAcl | None]:
    """Every document the source indexes, by '/'-separated path relative to ``root``, with its ACL.

    ``None`` means visible to nobody (no manifest above it, or a broken or ambiguous one).
    """
    documents: dict[str, RefAcl | None] = {}
    _walk(os.fsencode(root), (), None, tenant_id, documents)
    return documents


def _walk(
    folder: bytes, parts: tuple[str, ...], parent: State, tenant_id: str, documents: dict[str, RefAcl | None]
) -> None:
    state = _apply(parent, _read_manifest(os.path.join(folder, os.fsencode(FOLDER_MANIFEST)), tenant_id=tenant_id))
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    names: list[str] = []
    for entry in entries:
        try:
            names.append(entry.name.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # not valid UTF-8: never indexed
    canonical: dict[str, list[str]] = {}
    for name in names:
        canonical.setdefault(canonical_name(name), []).append(name)
    for entry in entries:
        try:
            name = entry.name.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name.startswith("."):
            continue
        if entry.is_symlink():
            continue  # a link is never indexed, whatever it points to
        if entry.is_dir(follow_symlinks=False):
            _walk(entry.path, (*parts, name), state, tenant_id, documents)
            continue
        if not entry.is_file(follow_symlinks=False) or is_manifest_name(name) or not is_document_name(name):
            continue
        if not _has_text(entry.path):
            continue
        documents["/".join((*parts, name))] = _file_acl(folder, name, state, canonical, tenant_id)


def _file_acl(folder: bytes, name: str, state: State, canonical: dict[str, list[str]], tenant_id: str) -> RefAcl | None:
    sidecar = name + MANIFEST_SUFFIX
    if any(other != sidecar for other in canonical.get(canonical_name(sidecar), [])):
        return None  # a near-miss sidecar: which one was meant is unknowable, so nobody
    result = _apply(state, _read_manifest(os.path.join(folder, os.fsencode(sidecar)), tenant_id=tenant_id))
    return None if isinstance(result, _Broken) else result


def _has_text(path: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return bool(data.decode("utf-8", errors="replace").strip())


def readable_documents(root: Path, *, tenant_id: str, caller: Caller) -> set[str]:
    """Paths of the documents ``caller`` may read in the source at ``root`` of tenant ``tenant_id``."""
    return {
        path
        for path, acl in effective_acls(root, tenant_id=tenant_id).items()
        if may_read(acl, source_tenant=tenant_id, caller=caller)
    }


def readers(acls: dict[str, RefAcl | None], *, tenant_id: str, callers: Iterable[Caller]) -> dict[str, set[str]]:
    """For each caller (by label), the documents of ``acls`` that caller may read."""
    return {
        caller.label: {path for path, acl in acls.items() if may_read(acl, source_tenant=tenant_id, caller=caller)}
        for caller in callers
    }
