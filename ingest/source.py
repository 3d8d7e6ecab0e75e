"""Document sources: where documents and their ACLs come from.

A source yields :class:`SourceItem`s: an entry to ingest or to report, its
stable path within the source, and the access decision made for it by
:func:`ingest.acl_decision.decide_acl` (the pipeline acts on that decision
alone). The filesystem source reads ACL manifests; mailboxes and SharePoint
slot in later behind the same protocol.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from acl.principal import normalize_id
from core.errors import InvalidInputError
from ingest.acl_decision import AclDecision, EntryKind, Nobody, decide_acl
from ingest.jobs import safe_text
from ingest.manifest import ManifestResolver, is_manifest


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One entry of a source, not yet read, with the access decision made for it."""

    path: str  # stable, relative, '/'-separated: the document's identity within its source
    local_path: Path
    size: int
    modified_at: float
    decision: AclDecision

    @property
    def has_identity(self) -> bool:
        """False when ``path`` is only an escaped rendering (a name that is not UTF-8) and names no document."""
        return not isinstance(self.decision, Nobody) or self.decision.cause.has_identity


class DocumentSource(Protocol):
    """Anything that can list documents with their access decisions."""

    @property
    def source_id(self) -> str:
        """The index identity of the source; internal, may name server paths."""
        ...

    @property
    def display_source(self) -> str:
        """What job records and clients see: names the source without revealing server paths."""
        ...

    @property
    def tenant_id(self) -> str: ...

    def covers(self, path: str) -> bool:
        """Whether a document path of this source lies in what this run walks (only those may be deleted)."""
        ...

    def items(self) -> Iterator[SourceItem]: ...


class FilesystemSource:
    """A folder tree with ``.acl.json`` manifests.

    ``root`` is the tenant's allowed folder: manifests are resolved from it down
    and document paths are relative to it, so a document has one identity and
    one ACL whichever ``scope`` (a folder inside ``root``, the whole root when
    None) a job walks. Only regular files are documents: hidden entries (name
    starting with '.') are skipped, manifests are never documents, links are
    never followed, and everything else is reported with a reason.
    """

    def __init__(self, *, root: Path, tenant_id: str, scope: Path | None = None) -> None:
        self._root = _existing_folder(root)
        self._scope = self._root if scope is None else _scope_inside(self._root, scope)
        try:
            self._tenant_id = normalize_id(tenant_id, "tenant")
        except ValueError as exc:
            raise InvalidInputError(f"tenant id must be a GUID, got {tenant_id!r}") from exc
        self._scope_path = self._scope.relative_to(self._root).as_posix() if self._scope != self._root else ""

    @property
    def source_id(self) -> str:
        return f"fs:{self._root.as_posix()}"

    @property
    def display_source(self) -> str:
        name = self._root.name or "/"
        return f"{name}/{self._scope_path}" if self._scope_path else name

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def root(self) -> Path:
        return self._root

    @property
    def scope(self) -> Path:
        return self._scope

    def covers(self, path: str) -> bool:
        return not self._scope_path or path.startswith(self._scope_path + "/")

    def items(self) -> Iterator[SourceItem]:
        """Entries below the scope, depth first: a folder's entries in name order, then its subfolders."""
        # A fresh resolver per walk: manifests cached from an earlier run could hold a wider, stale ACL.
        manifests = ManifestResolver(root=self._root, tenant_id=self._tenant_id)
        pending = [self._scope]
        while pending:  # a stack, not recursion: deep trees must not hit the interpreter's limit
            folder = pending.pop()
            subfolders: list[Path] = []
            yield from self._folder_items(folder, subfolders, manifests)
            pending.extend(reversed(subfolders))

    def _folder_items(self, folder: Path, subfolders: list[Path], manifests: ManifestResolver) -> Iterator[SourceItem]:
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            yield self._refused(folder, EntryKind.UNREADABLE, f"folder cannot be listed: {_why(exc)}")
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue  # hidden entries (.git, .svn, ...) are tooling, not documents
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield self._refused(path, EntryKind.UNREADABLE, _why(exc))
                continue
            if not _is_utf8(entry.name):
                detail = "a folder, not walked" if stat.S_ISDIR(info.st_mode) else ""
                yield self._refused(path, EntryKind.UNDECODABLE_NAME, detail)
            elif stat.S_ISDIR(info.st_mode):
                subfolders.append(path)  # even one named like a manifest: only files are manifests
            elif not is_manifest(entry.name):  # manifests are configuration, never documents
                yield self._item(path, info, manifests)

    def _item(self, path: Path, info: os.stat_result, manifests: ManifestResolver) -> SourceItem:
        if stat.S_ISREG(info.st_mode):
            decision = manifests.decide(path)
        elif stat.S_ISLNK(info.st_mode):
            # A link would publish its target under an ACL that was never set for the target.
            decision = decide_acl(kind=EntryKind.SYMLINK)
        else:
            decision = decide_acl(kind=EntryKind.SPECIAL_FILE)
        return SourceItem(
            path=self._relative(path), local_path=path, size=info.st_size, modified_at=info.st_mtime, decision=decision
        )

    def _refused(self, path: Path, kind: EntryKind, detail: str) -> SourceItem:
        decision = decide_acl(kind=kind, detail=detail)
        return SourceItem(path=self._relative(path), local_path=path, size=0, modified_at=0.0, decision=decision)

    def _relative(self, path: Path) -> str:
        relative = path.relative_to(self._root).as_posix()
        return safe_text(relative) if relative != "." else "."


def _existing_folder(root: Path) -> Path:
    resolved = root.expanduser().resolve()
    if not resolved.is_dir():
        raise InvalidInputError(f"not a folder: {safe_text(str(root))}")
    if not _is_utf8(str(resolved)):
        # Paths are stored as document identities; one that is not UTF-8 could not be written.
        raise InvalidInputError(f"folder path is not valid UTF-8: {safe_text(str(root))}")
    return resolved


def _scope_inside(root: Path, scope: Path) -> Path:
    resolved = _existing_folder(root / scope.expanduser())  # an absolute scope replaces root in the join
    if not resolved.is_relative_to(root):
        raise InvalidInputError(f"scope {safe_text(str(scope))} is not a folder inside the source root")
    if any(part.startswith(".") for part in resolved.relative_to(root).parts):
        # A walk of the whole root skips these folders; a scoped walk must not see more than it.
        raise InvalidInputError(f"scope {safe_text(str(scope))} is inside a hidden folder")
    return resolved


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def file_sha256(path: Path) -> str:
    """The content hash; refuses a path that became a link or a FIFO since it was listed."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
