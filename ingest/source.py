"""Document sources: where documents and their ACLs come from.

A source yields :class:`SourceItem`s: a file on local disk to parse, its stable
path within the source, and its effective ACL (or the reason it has none).
The filesystem source reads ACL manifests; mailboxes and SharePoint slot in
later behind the same protocol.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from acl.access import AccessList
from core.errors import InvalidInputError, ManifestError
from ingest.manifest import ManifestResolver, is_manifest


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One document of a source, not yet read."""

    path: str  # stable, relative, '/'-separated: the document's identity within its source
    local_path: Path
    size: int
    modified_at: float
    acl: AccessList | None  # None: no manifest applies, the document is visible to nobody
    acl_error: str | None = None  # a manifest problem; the document is then fail-closed


class DocumentSource(Protocol):
    """Anything that can list documents with their effective ACLs."""

    @property
    def source_id(self) -> str: ...

    @property
    def tenant_id(self) -> str: ...

    def items(self) -> Iterator[SourceItem]: ...


class FilesystemSource:
    """A folder tree with ``.acl.json`` manifests."""

    def __init__(self, *, root: Path, tenant_id: str) -> None:
        resolved = root.expanduser().resolve()
        if not resolved.is_dir():
            raise InvalidInputError(f"not a folder: {root}")
        self._root = resolved
        self._tenant_id = tenant_id
        self._manifests = ManifestResolver(root=resolved, tenant_id=tenant_id)

    @property
    def source_id(self) -> str:
        return f"fs:{self._root.as_posix()}"

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def root(self) -> Path:
        return self._root

    def items(self) -> Iterator[SourceItem]:
        for dirpath, dirnames, filenames in os.walk(self._root, followlinks=False):
            # Hidden folders (.git, .svn, ...) are tooling, not documents; sorted for stable order.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or is_manifest(path) or not path.is_file():
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(self._root):
                    # A link out of the tree would publish a file under an ACL that was never set for it.
                    continue
                yield self._item(path)

    def _item(self, path: Path) -> SourceItem:
        stat = path.stat()
        acl: AccessList | None = None
        acl_error: str | None = None
        try:
            acl = self._manifests.effective_acl(path)
        except ManifestError as exc:
            acl_error = str(exc)
        return SourceItem(
            path=path.relative_to(self._root).as_posix(),
            local_path=path,
            size=stat.st_size,
            modified_at=stat.st_mtime,
            acl=acl,
            acl_error=acl_error,
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
