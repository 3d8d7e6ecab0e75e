"""Explain access: why a user can or cannot see a document, for an admin of the document's tenant.

Three questions, each answered only inside one tenant:

- :meth:`ExplainAccess.explain`: can this user see this document, and why. The
  document's effective ACL with the manifest each entry comes from (through
  which ``inherit`` chain), or why it is visible to nobody; the ACL the index
  holds and whether it is stale (the next ingestion will change it); the
  user's keys with where each came from; and the entry that decided.
- :meth:`ExplainAccess.who_can_see`: the document's allow and deny entries,
  with display names where the directory knows them.
- :meth:`ExplainAccess.what_can_see`: the documents of the tenant a user may
  read, a page at a time.

Nothing here decides anything. The manifests are read by walking the
document's folder with :class:`ingest.source.FilesystemSource`, the walk
ingestion makes, so the decision (and the origins recorded with it by
:func:`ingest.acl_decision.decide_acl`) is the one ingestion stores; a verdict
is :meth:`acl.access.AccessList.permits`, the rule the index filter agrees with.

Isolation: a document path names a file under one of the tenant's own allowed
roots; anything else is the same :class:`NotFoundError` whether it exists
elsewhere or not, so paths cannot be probed. Keys and display names of another
tenant are never shown, and users are resolved within the tenant only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from acl.access import AccessList
from acl.dev.directory import Directory, DirectoryGroupResolver
from acl.principal import Principal, normalize_id
from core.errors import GroupResolutionError, InvalidInputError, NotFoundError
from index.ports import ChunkIndex
from ingest.acl_decision import AclDecision, Effect, Granted, Nobody, NobodyCause, held_acl
from ingest.acl_decision import stored_acl as acl_to_store
from ingest.manifest import governing_manifests
from ingest.pipeline import document_id
from ingest.source import FilesystemSource, SourceItem

NO_MATCH = "no_match"
NOT_INDEXED = "not_indexed"
MAX_PAGE = 500
_UNSPECIFIED = "unspecified"
_SCAN_BATCH = 500
_MAX_SCAN_BATCH = 16_000

#: ``(tenant id, object id) -> (principal, {key: origin})``: a user as the directory or Graph knows them.
UserResolver = Callable[[str, str], tuple[Principal, Mapping[str, str]]]


class DisplayNames(Protocol):
    """Display names for principals; None when unknown (the key is shown alone)."""

    def display_name(self, tenant_id: str, kind: str, object_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class KeyOrigin:
    """One of the user's principal keys and where it came from (token, graph, cache, directory...)."""

    key: str
    origin: str


@dataclass(frozen=True, slots=True)
class UserKeys:
    """The user as explained: the keys the verdicts were computed with, and why there may be fewer."""

    object_id: str
    guest: bool
    narrowed: tuple[str, ...]
    keys: tuple[KeyOrigin, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``can_see`` is :meth:`AccessList.permits`; ``decided_by`` names the entry behind it.

    ``deny:<key>`` whenever a deny entry matches (deny beats allow), else
    ``allow:<key>``, else ``no_match``; ``not_indexed`` when there is no ACL to
    judge (the index holds no chunk, or the next ingestion will store none).
    """

    can_see: bool
    decided_by: str
    matched_allow: tuple[str, ...] = ()
    matched_deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PrincipalEntry:
    """An allow or deny entry: its key, what it names, and the manifests that set it (root first)."""

    key: str
    kind: str  # user, group or tenant
    object_id: str
    display_name: str | None
    manifests: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AclView:
    allow: tuple[PrincipalEntry, ...] = ()
    deny: tuple[PrincipalEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentAccess:
    """Who can see one document, from its manifests now and from the index.

    ``decision`` is ingestion's own (None: the path is no longer a document of
    the source, and the next ingestion removes what the index holds). ``manifests``
    is its effective ACL with origins (empty when visible to nobody); ``stored``
    is what searches enforce today (None: not indexed). ``stale``: the index
    holds an ACL the next ingestion will change or remove.
    """

    tenant_id: str
    document: str  # relative to its root, as ingestion names it
    source: str  # the root folder's name; never the server path
    decision: AclDecision | None
    looked_for: tuple[str, ...]  # where manifests for it are read, root first
    manifests: AclView
    stored: AclView | None
    stale: bool
    stored_acl: AccessList | None
    next_acl: AccessList | None  # what the next ingestion stores; None when it stores nothing


@dataclass(frozen=True, slots=True)
class Explanation:
    """Can this user see this document: ``now`` (the index, what search enforces) and after the next ingestion."""

    access: DocumentAccess
    user: UserKeys
    now: Verdict
    after_next_ingestion: Verdict

    @property
    def can_see(self) -> bool:
        return self.now.can_see


@dataclass(frozen=True, slots=True)
class VisibleDocument:
    source: str
    path: str
    title: str
    decided_by: str


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """One page of the documents a user may read; ``next_offset`` is None on the last page."""

    user: UserKeys
    documents: tuple[VisibleDocument, ...]
    offset: int
    limit: int
    next_offset: int | None


def judge(acl: AccessList | None, keys: frozenset[str]) -> Verdict:
    """The verdict of ``acl`` for ``keys``, with the entry that decided it."""
    if acl is None:
        return Verdict(can_see=False, decided_by=NOT_INDEXED)
    allowed = tuple(sorted(acl.allow & keys))
    denied = tuple(sorted(acl.deny & keys))
    can_see = acl.permits(keys)  # the reference rule decides; the rest only names the entry
    decided_by = f"deny:{denied[0]}" if denied else f"allow:{allowed[0]}" if allowed else NO_MATCH
    return Verdict(can_see=can_see, decided_by=decided_by, matched_allow=allowed, matched_deny=denied)


@dataclass(frozen=True, slots=True)
class _Root:
    path: Path  # resolved, as ingestion uses it
    spellings: tuple[PurePosixPath, ...]  # as configured and resolved: an absolute document path may use either


class ExplainAccess:
    """Answers explain-access questions for the admins of each tenant, over the index and the allowed roots."""

    def __init__(
        self,
        *,
        index: ChunkIndex,
        allowed_roots: Mapping[str, Sequence[Path]],
        directory: DisplayNames | None = None,
        users: UserResolver | None = None,
    ) -> None:
        self._index = index
        self._directory = directory
        self._users = users
        self._roots = {
            tenant.lower(): tuple(_root(Path(root)) for root in roots) for tenant, roots in allowed_roots.items()
        }

    # -- the three questions ------------------------------------------------------------------------

    def explain(
        self,
        *,
        tenant_id: str,
        user: Principal,
        document_path: str,
        key_origins: Mapping[str, str] | None = None,
    ) -> Explanation:
        """Can ``user`` see ``document_path`` (relative to a root of ``tenant_id``, or absolute under one), and why."""
        tenant = self._own_user(tenant_id, user)
        access = self.who_can_see(tenant_id=tenant, document_path=document_path)
        keys = user.access_keys()
        return Explanation(
            access=access,
            user=_user_keys(user, key_origins or {}),
            now=judge(access.stored_acl, keys),
            after_next_ingestion=judge(access.next_acl, keys),
        )

    def explain_user(self, *, tenant_id: str, object_id: str, document_path: str) -> Explanation:
        """:meth:`explain` for a user given by object id, resolved within ``tenant_id``."""
        principal, origins = self._resolve(tenant_id, object_id)
        return self.explain(tenant_id=tenant_id, user=principal, document_path=document_path, key_origins=origins)

    def who_can_see(self, *, tenant_id: str, document_path: str) -> DocumentAccess:
        """The document's entries, from its manifests (with origins) and from the index."""
        tenant = tenant_id.lower()
        for root, relative in self._candidates(tenant, document_path):
            access = self._inspect(tenant, root, relative)
            if access is not None:
                return access
        raise _not_found()

    def what_can_see(
        self,
        *,
        tenant_id: str,
        user: Principal,
        offset: int = 0,
        limit: int = 50,
        key_origins: Mapping[str, str] | None = None,
    ) -> DocumentPage:
        """Documents of ``tenant_id`` that ``user`` may read now (by the stored ACLs), ordered by source and path."""
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"offset must be 0 or more and limit between 1 and {MAX_PAGE}")
        tenant = self._own_user(tenant_id, user)
        keys = user.access_keys()
        found: list[VisibleDocument] = []
        skipped = 0
        start, size = 0, _SCAN_BATCH
        while True:
            # The index pages over every document, the user's pages over the ones they may read; batches
            # double so that a large tenant costs few index reads.
            batch = self._index.documents(tenant_id=tenant, offset=start, limit=size)
            for document in batch:
                if document.tenant_id != tenant:
                    continue  # the index filters by tenant already; a second look costs nothing
                verdict = judge(held_acl(allow=document.acl_allow, deny=document.acl_deny), keys)
                if not verdict.can_see:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                if len(found) == limit:
                    return _page(user, key_origins, found, offset, limit, next_offset=offset + limit)
                found.append(
                    VisibleDocument(
                        source=_source_name(document.source_id),
                        path=document.path,
                        title=document.title,
                        decided_by=verdict.decided_by,
                    )
                )
            if len(batch) < size:
                return _page(user, key_origins, found, offset, limit, next_offset=None)
            start, size = start + size, min(size * 2, _MAX_SCAN_BATCH)

    def what_user_can_see(self, *, tenant_id: str, object_id: str, offset: int = 0, limit: int = 50) -> DocumentPage:
        """:meth:`what_can_see` for a user given by object id, resolved within ``tenant_id``."""
        principal, origins = self._resolve(tenant_id, object_id)
        return self.what_can_see(tenant_id=tenant_id, user=principal, offset=offset, limit=limit, key_origins=origins)

    # -- users ---------------------------------------------------------------------------------------

    def _resolve(self, tenant_id: str, object_id: str) -> tuple[Principal, Mapping[str, str]]:
        try:
            oid = normalize_id(object_id, "user")
        except ValueError:
            raise InvalidInputError("user must be an object id (a GUID)") from None
        if self._users is None:
            raise InvalidInputError("users cannot be resolved here: no directory is configured")
        principal, origins = self._users(tenant_id.lower(), oid)
        if principal.object_id != oid:
            raise _no_user()
        return principal, origins

    def _own_user(self, tenant_id: str, user: Principal) -> str:
        tenant = tenant_id.lower()
        if user.tenant_id != tenant:
            raise _no_user()  # another tenant's users do not exist for this admin
        return tenant

    # -- documents -----------------------------------------------------------------------------------

    def _candidates(self, tenant: str, document_path: str) -> list[tuple[Path, str]]:
        """(root, path relative to it) pairs ``document_path`` may name, in the order of the tenant's roots."""
        if not document_path or "\x00" in document_path or not _is_utf8(document_path):
            return []  # no document has such a name: ingestion stores paths as UTF-8, and the OS refuses NUL
        pure = PurePosixPath(document_path)
        if ".." in pure.parts:
            return []  # a lexical '..' could leave the root; documents never need one
        roots = self._roots.get(tenant, ())
        if not pure.is_absolute():
            relative = pure.as_posix()
            return [] if relative == "." else [(root.path, relative) for root in roots]
        found: list[tuple[Path, str]] = []
        for root in roots:
            spelling = next((s for s in root.spellings if pure.is_relative_to(s) and pure != s), None)
            if spelling is not None:
                found.append((root.path, pure.relative_to(spelling).as_posix()))
        return found

    def _inspect(self, tenant: str, root: Path, relative: str) -> DocumentAccess | None:
        try:
            source = FilesystemSource(root=root, tenant_id=tenant)
        except InvalidInputError:
            return None  # the root is gone: nothing under it can be named
        item = _find(root, tenant, relative)
        doc_id = document_id(tenant_id=source.tenant_id, source_id=source.source_id, path=relative)
        stored = self._index.stored_acl(doc_id)
        if item is None and stored is None:
            return None
        decision = item.decision if item is not None else None
        next_acl = _next_acl(decision)
        return DocumentAccess(
            tenant_id=tenant,
            document=relative,
            source=_source_name(source.source_id),
            decision=decision,
            looked_for=governing_manifests(relative),
            manifests=self._manifest_view(tenant, decision),
            stored=None if stored is None else self._view(tenant, stored),
            stale=stored is not None and (next_acl is None or next_acl.fingerprint() != stored.fingerprint()),
            stored_acl=stored,
            next_acl=next_acl,
        )

    def _manifest_view(self, tenant: str, decision: AclDecision | None) -> AclView:
        if not isinstance(decision, Granted):
            return AclView()
        origins = decision.origins
        return AclView(
            allow=tuple(
                self._entry(tenant, key, origins.manifests_of(Effect.ALLOW, key)) for key in sorted(decision.acl.allow)
            ),
            deny=tuple(
                self._entry(tenant, key, origins.manifests_of(Effect.DENY, key)) for key in sorted(decision.acl.deny)
            ),
        )

    def _view(self, tenant: str, acl: AccessList) -> AclView:
        return AclView(
            allow=tuple(self._entry(tenant, key, ()) for key in sorted(acl.allow)),
            deny=tuple(self._entry(tenant, key, ()) for key in sorted(acl.deny)),
        )

    def _entry(self, tenant: str, key: str, manifests: tuple[str, ...]) -> PrincipalEntry:
        kind, _, rest = key.partition(":")
        key_tenant, _, object_id = rest.partition("/")
        object_id = object_id or key_tenant  # tenant:{tid} names the tenant itself
        # A name is looked up only for this tenant's own keys: another tenant's directory is not the admin's to read.
        name = (
            self._directory.display_name(tenant, kind, object_id)
            if self._directory is not None and key_tenant == tenant
            else None
        )
        return PrincipalEntry(key=key, kind=kind, object_id=object_id, display_name=name, manifests=manifests)


def _root(configured: Path) -> _Root:
    resolved = configured.expanduser().resolve()
    as_given = PurePosixPath(os.path.abspath(configured.expanduser()))
    return _Root(path=resolved, spellings=tuple(dict.fromkeys((as_given, PurePosixPath(resolved)))))


def _find(root: Path, tenant: str, relative: str) -> SourceItem | None:
    """The item ingestion's own walk yields for ``relative``, or None when the walk yields no such document.

    Walking the document's folder (not probing the path) keeps every rule of the
    source in one place: hidden names, manifests, links, FIFOs, folders behind links.
    """
    parent = PurePosixPath(relative).parent
    scope = None if parent == PurePosixPath(".") else root / parent
    try:
        source = FilesystemSource(root=root, tenant_id=tenant, scope=scope)
        for item in source.items():
            if PurePosixPath(item.path).parent != parent:
                break  # the walk yields the folder's own entries first; anything else is deeper or elsewhere
            if item.path == relative and item.has_identity:
                return item
    except (InvalidInputError, OSError):
        # Not a folder, behind a link out of the root, hidden, or a name the OS refuses: never walked by ingestion.
        return None
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _next_acl(decision: AclDecision | None) -> AccessList | None:
    # Mirrors the pipeline: only a granted file or one without any manifest is stored; the rest is removed.
    if decision is None or (isinstance(decision, Nobody) and not decision.cause.stores_content):
        return None
    return acl_to_store(decision)


def _source_name(source_id: str) -> str:
    # source ids name server paths; clients see the root folder's name, as job records do.
    return PurePosixPath(source_id.removeprefix("fs:")).name or "/"


def _user_keys(user: Principal, origins: Mapping[str, str]) -> UserKeys:
    return UserKeys(
        object_id=user.object_id,
        guest=user.guest,
        narrowed=user.narrowing_reasons,
        keys=tuple(KeyOrigin(key=key, origin=origins.get(key, _UNSPECIFIED)) for key in sorted(user.access_keys())),
    )


def _page(
    user: Principal,
    origins: Mapping[str, str] | None,
    found: list[VisibleDocument],
    offset: int,
    limit: int,
    *,
    next_offset: int | None,
) -> DocumentPage:
    return DocumentPage(
        user=_user_keys(user, origins or {}),
        documents=tuple(found),
        offset=offset,
        limit=limit,
        next_offset=next_offset,
    )


def _not_found() -> NotFoundError:
    # One message for every miss: whether the path exists in another tenant or nowhere cannot be told apart.
    return NotFoundError("no such document under your tenant's folders")


def _no_user() -> NotFoundError:
    return NotFoundError("no such user in your tenant")


def describe(explanation: Explanation) -> list[str]:
    """The explanation as lines of text, for the CLI."""
    access, now = explanation.access, explanation.now
    lines = [
        f"{access.source}/{access.document}: user {explanation.user.object_id} "
        f"{'CAN' if now.can_see else 'CANNOT'} see it now ({now.decided_by})",
    ]
    decision = access.decision
    if decision is None:
        lines.append("  manifests: no longer a document of the source; the next ingestion removes it")
    elif isinstance(decision, Nobody):
        lines.append(f"  manifests: visible to nobody ({decision.cause}): {decision.reason}")
        lines.extend(f"    broken: {problem.source}: {problem.reason}" for problem in decision.problems)
        if decision.cause is NobodyCause.NO_MANIFEST:
            lines.append("    manifests are read from: " + ", ".join(access.looked_for))
    else:
        lines.append(f"  manifests: {' -> '.join(decision.origins.chain)} (inherit chain, root first)")
        if decision.origins.replaced:
            lines.append(f"    replaced (not inherited): {', '.join(decision.origins.replaced)}")
        for effect, entries in (("allow", access.manifests.allow), ("deny", access.manifests.deny)):
            lines.extend(
                f"    {effect:<5} {entry.key}{f' ({entry.display_name})' if entry.display_name else ''}"
                f" from {', '.join(entry.manifests)}"
                for entry in entries
            )
        lines.extend(f"    warning: {warning}" for warning in decision.warnings)
    if access.stored is None:
        lines.append("  index: not indexed")
    else:
        state = "STALE: the next ingestion changes it" if access.stale else "matches the manifests"
        lines.append(f"  index: {len(access.stored.allow)} allow, {len(access.stored.deny)} deny entries; {state}")
    after = explanation.after_next_ingestion
    if after != now:
        lines.append(f"  after the next ingestion: {'can' if after.can_see else 'cannot'} see it ({after.decided_by})")
    lines.append("  user keys:")
    lines.extend(f"    {key.key} ({key.origin})" for key in explanation.user.keys)
    if explanation.user.narrowed:
        lines.append(f"    narrowed: {', '.join(explanation.user.narrowed)}")
    return lines


class DevDirectoryAccess:
    """The development directory as explain-access uses it: display names, and users with their groups.

    Production wires Microsoft Graph behind the same two callables. Groups come
    from :class:`DirectoryGroupResolver`, the resolver group overage uses.
    """

    def __init__(self, directory: Directory) -> None:
        self._users = {(user.tenant.lower(), user.oid.lower()): user for user in directory.users}
        self._groups = DirectoryGroupResolver(directory=directory)
        self._group_names = {gid.lower(): name for gid, name in directory.group_names.items()}
        self._tenant_names = {tid.lower(): name for tid, name in directory.tenant_names.items()}
        # The directory file does not say whose a group is; a group is a tenant's when a member of that tenant
        # holds it, so one tenant's admin never learns the name of another tenant's group.
        self._group_tenants: dict[str, set[str]] = {}
        for user in directory.users:
            for group in user.groups:
                self._group_tenants.setdefault(group.lower(), set()).add(user.tenant.lower())

    def display_name(self, tenant_id: str, kind: str, object_id: str) -> str | None:
        tenant, oid = tenant_id.lower(), object_id.lower()
        if kind == "user":
            user = self._users.get((tenant, oid))
            return user.display_name if user is not None else None
        if kind == "group":
            return self._group_names.get(oid) if tenant in self._group_tenants.get(oid, ()) else None
        if kind == "tenant" and oid == tenant:
            return self._tenant_names.get(tenant)
        return None

    def principal(self, tenant_id: str, object_id: str) -> tuple[Principal, dict[str, str]]:
        """The user as a token would carry them (groups resolved as overage is), each key's origin "directory"."""
        tenant, oid = tenant_id.lower(), object_id.lower()
        user = self._users.get((tenant, oid))
        if user is None:
            raise _no_user()
        try:
            groups = self._groups.member_groups(tenant, oid)
        except GroupResolutionError:
            raise _no_user() from None
        principal = Principal(tenant_id=tenant, object_id=oid, groups=groups, guest=user.guest, name=user.display_name)
        return principal, dict.fromkeys(principal.access_keys(), "directory")
