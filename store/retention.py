"""Retention and "forget user": how long each kind of record is kept, and removing one person's records.

Each kind of record has a window in days (None: kept forever). A run removes,
for every tenant, what fell out of its kind's window, measured from the
record's last change (a conversation's last exchange, a rating's last update,
a review item's last change, an audit record's time):

- conversations, feedback, review items: deleted;
- audit records: each chain's oldest records are cut as a prefix behind a
  chained checkpoint, so ``clearance audit verify`` still passes
  (:mod:`store.audit_retention`).

The boundary is strict: a record exactly as old as the window is kept, one a
moment older is removed. Every run that is not a dry run is an admin record in
the system chain (counts per kind, never names), and each cut chain carries its
own ``audit.truncate`` record.

Forget user deletes a person's conversations and feedback (and whatever else
is registered as their data), then erases their personal fields from their
tenant's audit (:func:`store.audit_erasure.erase_user`: the records stay,
their actor becomes a pseudonym, every hash still verifies), and records the
whole as a ``user.forget`` admin action holding counts only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from store.audit_erasure import erase_user
from store.audit_log import SYSTEM_CHAIN, AuditLog
from store.audit_retention import Truncation, chains, truncate_before

DAY_SECONDS = 86_400.0
RUN_ACTION = "retention.run"
FORGET_ACTION = "user.forget"
SCHEDULER_ACTOR = "system:retention"


class RetainedKind(StrEnum):
    CONVERSATIONS = "conversations"
    FEEDBACK = "feedback"
    REVIEW = "review"
    AUDIT = "audit"


class ExpiringRecords(Protocol):
    """Records of one kind that retention may count and delete by age (every tenant)."""

    def count_older_than(self, *, cutoff: float) -> int: ...

    def delete_older_than(self, *, cutoff: float) -> int: ...


class PersonalRecords(Protocol):
    """Records that belong to one person, deleted when they are forgotten."""

    def delete_user(self, *, tenant_id: str, object_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind is kept; a kind absent, None or 0 is kept forever."""

    days: Mapping[RetainedKind, float | None] = field(default_factory=dict)

    def window_seconds(self, kind: RetainedKind) -> float | None:
        days = self.days.get(kind)
        return days * DAY_SECONDS if days else None


@dataclass(frozen=True, slots=True)
class KindOutcome:
    kind: RetainedKind
    days: float | None  # None: kept forever, nothing was looked at
    cutoff: float | None  # epoch seconds: records last changed before this were removed
    removed: int


@dataclass(frozen=True, slots=True)
class RetentionReport:
    dry_run: bool
    at: float
    kinds: tuple[KindOutcome, ...]
    chains: tuple[Truncation, ...]  # the audit's chains that were (or would be) cut, or refused

    @property
    def removed(self) -> dict[str, int]:
        return {outcome.kind.value: outcome.removed for outcome in self.kinds}

    @property
    def refused(self) -> list[Truncation]:
        """Chains left whole because they do not verify (their tampering is evidence)."""
        return [chain for chain in self.chains if chain.refused is not None]


@dataclass(frozen=True, slots=True)
class ForgetReport:
    removed: dict[str, int]  # per kind of personal record: how many were deleted
    audit_records: int  # audit records whose personal fields were erased


class Retention:
    """Runs the retention policy over the store's records, and forgets users."""

    def __init__(
        self,
        *,
        log: AuditLog,
        policy: RetentionPolicy,
        expiring: Mapping[RetainedKind, ExpiringRecords],
        personal: Mapping[str, PersonalRecords],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if RetainedKind.AUDIT in expiring:
            raise ValueError("the audit's retention is its own (a chained cut), not an ExpiringRecords")
        self._log = log
        self._policy = policy
        self._expiring = dict(expiring)
        self._personal = dict(personal)
        self._clock = clock

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    def run(self, *, actor: str = SCHEDULER_ACTOR, dry_run: bool = False) -> RetentionReport:
        """Applies the policy now; with ``dry_run``, counts what would go and changes nothing (and is not audited)."""
        now = self._clock()
        outcomes: list[KindOutcome] = []
        for kind in RetainedKind:
            if kind is RetainedKind.AUDIT:
                continue
            records = self._expiring.get(kind)
            window = self._policy.window_seconds(kind)
            if records is None or window is None:  # kept forever (or nothing of this kind is stored)
                outcomes.append(KindOutcome(kind=kind, days=None, cutoff=None, removed=0))
                continue
            cutoff = now - window
            removed = records.count_older_than(cutoff=cutoff) if dry_run else records.delete_older_than(cutoff=cutoff)
            outcomes.append(KindOutcome(kind=kind, days=window / DAY_SECONDS, cutoff=cutoff, removed=removed))
        truncations = self._audit(now, actor=actor, dry_run=dry_run)
        audit_window = self._policy.window_seconds(RetainedKind.AUDIT)
        outcomes.append(
            KindOutcome(
                kind=RetainedKind.AUDIT,
                days=audit_window / DAY_SECONDS if audit_window else None,
                cutoff=now - audit_window if audit_window else None,
                removed=sum(t.removed for t in truncations if t.refused is None),
            )
        )
        report = RetentionReport(dry_run=dry_run, at=now, kinds=tuple(outcomes), chains=tuple(truncations))
        if not dry_run:
            self._log.record_admin_action(
                tenant_id=SYSTEM_CHAIN,
                actor=actor,
                action=RUN_ACTION,
                detail={
                    "removed": report.removed,
                    "days": {o.kind.value: o.days for o in outcomes},
                    "chains_cut": sum(1 for t in truncations if t.removed and t.refused is None),
                    "chains_refused": len(report.refused),
                },
                outcome="ok" if not report.refused else "partial",
            )
        return report

    def _audit(self, now: float, *, actor: str, dry_run: bool) -> list[Truncation]:
        window = self._policy.window_seconds(RetainedKind.AUDIT)
        if window is None:
            return []
        cutoff_us = round((now - window) * 1_000_000)
        cut = (
            truncate_before(self._log, chain=chain, cutoff_us=cutoff_us, actor=actor, dry_run=dry_run)
            for chain in chains(self._log)
        )
        return [truncation for truncation in cut if truncation.removed or truncation.refused]

    def forget_user(self, *, tenant_id: str, object_id: str, actor: str) -> ForgetReport:
        """Deletes the person's own records, erases their personal fields from the audit; audited (counts only)."""
        removed = {
            name: records.delete_user(tenant_id=tenant_id, object_id=object_id)
            for name, records in self._personal.items()
        }
        erased = erase_user(self._log, tenant_id=tenant_id, object_id=object_id, actor=actor)
        # Counts only: naming the person here would put back what was just erased.
        self._log.record_admin_action(
            tenant_id=tenant_id,
            actor=actor,
            action=FORGET_ACTION,
            detail={"removed": removed, "audit_records_erased": erased},
        )
        return ForgetReport(removed=removed, audit_records=erased)
