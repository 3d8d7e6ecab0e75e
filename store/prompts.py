"""Versioned prompts in the store: seed the built-ins, add versions, activate and roll back per tenant.

Scope: activation is per tenant (an admin changes what their own tenant's
answers use, never another's). Built-in versions (owner ``""``) are seeded from
``retrieval/prompt_templates/`` and visible to every tenant; a version an admin
adds belongs to their tenant alone, and another tenant's versions are "not
found", exactly like versions that do not exist. A tenant version may not take
the label of a built-in one, so ``name/version`` (what every answer records)
means one text in a tenant's chain.

Versions are immutable: nothing updates a stored version, a new file is a new
version, and a built-in whose file changed under the same version stops the
store from opening. Every activation and rollback is one write transaction that
holds the tenant's audit-chain lock, appends the activation history, moves the
active version and chains the admin record, so concurrent admins are
serialized and the history, the active version and the audit cannot disagree.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError
from retrieval.prompt_files import PromptFile, builtin_default
from retrieval.prompt_template import PromptTemplate, PromptTemplateError, validated
from store.audit_log import AuditLog, lock_head, now_us
from store.database import Database
from store.prompt_tables import BUILTIN, PromptActivationRow, PromptActiveRow, PromptVersionRow

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 1000


class Gate(StrEnum):
    """How an activation was accepted."""

    PASSED = "passed"  # the evaluation gate ran with this version and found no regression
    FORCED = "forced"  # accepted without (or despite) the gate, with a reason
    ROLLBACK = "rollback"  # a return to the version active before: never gated, it is the way out


@dataclass(frozen=True, slots=True)
class Acceptance:
    """Why an activation may happen: ``summary`` is chained in clear (numbers, no names), ``reason`` erasably."""

    gate: Gate
    summary: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.gate is Gate.FORCED and not self.reason.strip():
            raise InvalidInputError("a forced activation needs a reason")
        if len(self.reason) > MAX_REASON_CHARS:
            raise InvalidInputError(f"the reason is longer than {MAX_REASON_CHARS} characters")


@dataclass(frozen=True, slots=True)
class StoredVersion:
    template: PromptTemplate
    builtin: bool
    created_at_us: int
    created_by: str
    digest: str


@dataclass(frozen=True, slots=True)
class Activation:
    seq: int
    action: str
    version: str
    previous: str
    gate: str
    actor: str
    at_us: int


class PromptStore:
    """The prompt repository; admin changes are chained into the tenant's audit with ``audit``."""

    def __init__(self, *, database: Database, audit: AuditLog) -> None:
        self._database = database
        self._audit = audit

    # -- versions ------------------------------------------------------------------------------

    def seed(self, files: Sequence[PromptFile], *, actor: str = "system:seed") -> list[str]:
        """Stores the built-in versions not stored yet; returns their ids. A changed built-in is an error."""
        added = []
        with self._database.write() as session:
            for prompt_file in files:
                template = prompt_file.template
                row = session.get(PromptVersionRow, (BUILTIN, template.name, template.version))
                if row is None:
                    session.add(_version_row(template, owner=BUILTIN, actor=actor))
                    added.append(template.id)
                elif row.digest != template.digest:
                    raise PromptTemplateError(
                        f"built-in prompt {template.id} differs from the version stored in the state store: stored "
                        "versions are immutable, so add the change as a new version file instead of editing this one"
                    )
        return added

    def add(self, template: PromptTemplate, *, tenant_id: str, actor: str) -> StoredVersion:
        """Stores ``template`` as a version of ``tenant_id``; an existing label is refused, never overwritten."""
        try:
            template = validated(template)
        except PromptTemplateError as exc:
            raise InvalidInputError(str(exc)) from None
        with self._database.write() as session:
            lock_head(session, tenant_id)  # one admin change of this tenant at a time
            for owner in (BUILTIN, tenant_id):
                if session.get(PromptVersionRow, (owner, template.name, template.version)) is not None:
                    raise InvalidInputError(
                        f"prompt {template.id} exists already; versions are immutable, choose a new version"
                    )
            row = _version_row(template, owner=tenant_id, actor=actor)
            session.add(row)
            self._audit.record_admin_action(
                tenant_id=tenant_id,
                actor=actor,
                action="prompt.add",
                target=template.id,
                detail={"digest": template.digest},
                session=session,
            )
            session.flush()
            return _stored(row)

    def versions(self, *, tenant_id: str, name: str | None = None) -> list[StoredVersion]:
        """The versions ``tenant_id`` can see (built-ins and its own), by name then creation."""
        query = select(PromptVersionRow).where(PromptVersionRow.owner.in_((BUILTIN, tenant_id)))
        if name is not None:
            query = query.where(PromptVersionRow.name == name)
        query = query.order_by(PromptVersionRow.name, PromptVersionRow.created_at_us, PromptVersionRow.version)
        with self._database.read() as session:
            return [_stored(row) for row in session.execute(query).scalars()]

    def get(self, *, tenant_id: str, name: str, version: str) -> StoredVersion:
        with self._database.read() as session:
            return _stored(_visible(session, tenant_id, name, version))

    def diff(self, *, tenant_id: str, name: str, old: str, new: str) -> str:
        """A unified diff from version ``old`` to ``new``, texts split after each sentence so a change shows."""
        before = self.get(tenant_id=tenant_id, name=name, version=old).template
        after = self.get(tenant_id=tenant_id, name=name, version=new).template
        return "".join(
            difflib.unified_diff(
                _readable(before), _readable(after), fromfile=before.id, tofile=after.id, n=2, lineterm="\n"
            )
        )

    # -- activation ----------------------------------------------------------------------------

    def active(self, *, tenant_id: str, name: str) -> StoredVersion:
        """The version ``tenant_id``'s next answer uses (the built-in default until one is activated)."""
        with self._database.read() as session:
            row = session.get(PromptActiveRow, (tenant_id, name))
            if row is None:
                try:
                    default = builtin_default(name)
                except PromptTemplateError:  # a name nothing ships and nobody activated
                    raise NotFoundError(f"no active version of prompt {name!r}") from None
                return _stored(_visible(session, tenant_id, name, default.version))
            stored = session.get(PromptVersionRow, (row.owner, row.name, row.version))
            if stored is None:  # the foreign key forbids it; never answer with a guess
                raise NotFoundError(f"the active prompt {name}/{row.version} is missing")
            return _stored(stored)

    def history(self, *, tenant_id: str, name: str) -> list[Activation]:
        """Every activation and rollback of ``name`` in ``tenant_id``, oldest first."""
        query = (
            select(PromptActivationRow)
            .where(PromptActivationRow.tenant_id == tenant_id, PromptActivationRow.name == name)
            .order_by(PromptActivationRow.seq)
        )
        with self._database.read() as session:
            return [_activation(row) for row in session.execute(query).scalars()]

    def activate(self, *, tenant_id: str, name: str, version: str, actor: str, acceptance: Acceptance) -> Activation:
        """Makes ``version`` the tenant's active one from the next request on; audited as ``prompt.activate``."""
        if acceptance.gate is Gate.ROLLBACK:
            raise InvalidInputError("a rollback goes through rollback()")
        with self._database.write() as session:
            lock_head(session, tenant_id)
            target = _visible(session, tenant_id, name, version)
            return self._move(session, tenant_id, name, target, actor=actor, action="activate", acceptance=acceptance)

    def rollback(self, *, tenant_id: str, name: str, actor: str, reason: str = "") -> Activation:
        """Returns to the version that was active before the current activation; audited as ``prompt.rollback``.

        Activations form a stack: rolling back twice after activating v2 then v3
        leaves the built-in default. With nothing activated, there is nothing
        to roll back to, and it is refused.
        """
        acceptance = Acceptance(gate=Gate.ROLLBACK, reason=reason)
        with self._database.write() as session:
            lock_head(session, tenant_id)
            stack = _stack(session, tenant_id, name)
            if not stack:
                raise InvalidInputError(f"nothing to roll back: {name} has no activation in force for this tenant")
            stack.pop()
            owner, version = stack[-1] if stack else (BUILTIN, builtin_default(name).version)
            target = session.get(PromptVersionRow, (owner, name, version))
            if target is None:
                raise NotFoundError(f"the version to roll back to, {name}/{version}, is missing")
            return self._move(session, tenant_id, name, target, actor=actor, action="rollback", acceptance=acceptance)

    def record_refusal(
        self, *, tenant_id: str, name: str, version: str, actor: str, summary: Mapping[str, Any]
    ) -> None:
        """An activation the gate refused, chained as a ``prompt.activate`` record with outcome ``refused``."""
        self.get(tenant_id=tenant_id, name=name, version=version)  # only versions the tenant can see
        self._audit.record_admin_action(
            tenant_id=tenant_id,
            actor=actor,
            action="prompt.activate",
            target=f"{name}/{version}",
            detail={"gate": "refused", "summary": dict(summary)},
            outcome="refused",
        )

    def _move(
        self,
        session: Session,
        tenant_id: str,
        name: str,
        target: PromptVersionRow,
        *,
        actor: str,
        action: str,
        acceptance: Acceptance,
    ) -> Activation:
        current = session.get(PromptActiveRow, (tenant_id, name))
        previous = current.version if current is not None else builtin_default(name).version
        last = session.execute(
            select(func.max(PromptActivationRow.seq)).where(
                PromptActivationRow.tenant_id == tenant_id, PromptActivationRow.name == name
            )
        ).scalar_one_or_none()
        row = PromptActivationRow(
            tenant_id=tenant_id,
            name=name,
            seq=(last or 0) + 1,
            action=action,
            owner=target.owner,
            version=target.version,
            previous=previous,
            gate=acceptance.gate.value,
            actor=actor,
            at_us=now_us(),
        )
        session.add(row)
        if current is None:
            session.add(
                PromptActiveRow(tenant_id=tenant_id, name=name, owner=target.owner, version=target.version, seq=row.seq)
            )
        else:
            current.owner, current.version, current.seq = target.owner, target.version, row.seq
        self._audit.record_admin_action(
            tenant_id=tenant_id,
            actor=actor,
            action=f"prompt.{action}",
            target=f"{name}/{target.version}",
            detail={
                "previous": f"{name}/{previous}",
                "digest": target.digest,
                "gate": acceptance.gate.value,
                "summary": dict(acceptance.summary),
            },
            private={"reason": acceptance.reason} if acceptance.reason else None,
            session=session,
        )
        session.flush()
        log.info("prompt %s/%s active for tenant %s (%s by %s)", name, target.version, tenant_id, action, actor)
        return _activation(row)


def _visible(session: Session, tenant_id: str, name: str, version: str) -> PromptVersionRow:
    """The version as ``tenant_id`` sees it: its own or a built-in; another tenant's is not found."""
    for owner in (tenant_id, BUILTIN):
        row = session.get(PromptVersionRow, (owner, name, version))
        if row is not None:
            return row
    raise NotFoundError(f"no prompt version {name}/{version}")


def _stack(session: Session, tenant_id: str, name: str) -> list[tuple[str, str]]:
    """The activations in force, oldest first: the history replayed, activate pushing and rollback popping."""
    query = (
        select(PromptActivationRow)
        .where(PromptActivationRow.tenant_id == tenant_id, PromptActivationRow.name == name)
        .order_by(PromptActivationRow.seq)
    )
    stack: list[tuple[str, str]] = []
    for row in session.execute(query).scalars():
        if row.action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append((row.owner, row.version))
    return stack


def _version_row(template: PromptTemplate, *, owner: str, actor: str) -> PromptVersionRow:
    return PromptVersionRow(
        owner=owner,
        name=template.name,
        version=template.version,
        system=template.system,
        user=template.user,
        description=template.description,
        digest=template.digest,
        created_at_us=now_us(),
        created_by=actor,
    )


def template_of(row: PromptVersionRow) -> PromptTemplate:
    return PromptTemplate(
        name=row.name, version=row.version, system=row.system, user=row.user, description=row.description
    )


def _stored(row: PromptVersionRow) -> StoredVersion:
    return StoredVersion(
        template=template_of(row),
        builtin=row.owner == BUILTIN,
        created_at_us=row.created_at_us,
        created_by=row.created_by,
        digest=row.digest,
    )


def _activation(row: PromptActivationRow) -> Activation:
    return Activation(
        seq=row.seq,
        action=row.action,
        version=row.version,
        previous=row.previous,
        gate=row.gate,
        actor=row.actor,
        at_us=row.at_us,
    )


_SENTENCE_END = re.compile(r"(?<=[.!?:])[ \t]+")


def _readable(template: PromptTemplate) -> list[str]:
    """The texts a diff compares, one sentence per line (a one-line system text would otherwise diff as one line)."""
    lines = [f"description: {template.description}\n", "system:\n"]
    for paragraph in template.system.split("\n"):
        lines += [f"  {sentence}\n" for sentence in _SENTENCE_END.split(paragraph)]
    lines.append("user:\n")
    lines += [f"  {line}\n" for line in template.user.split("\n")]
    return lines
