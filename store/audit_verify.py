"""Verifying the audit: every chain re-hashed from its genesis, the first bad record named.

For each record, in chain order, the verifier checks, and names the first
record where one fails (everything after it is a consequence):

- ``missing``: its position is not the next one (records before it were deleted);
- ``broken_link``: its ``prev_hash`` is not the previous record's hash (a record
  was inserted before it, or records were deleted or reordered);
- ``edited``: its fields no longer hash to its stored hash;
- ``personal_mismatch``: its personal fields (who asked, their keys, the question)
  no longer match their chained digest, or were removed without an audited erasure;
- ``index_mismatch``: the chunk rows used for "which answers used document X"
  disagree with the chunks the record chains.

Then the chain's end: the head row must name the last record (records deleted
from the end, or appended around the store, show here), and any anchor taken
earlier (a (seq, hash) an operator kept elsewhere) must still be in the chain:
an anchor is what catches an attacker who rewrites the whole chain, since a
chain without a secret can be recomputed by whoever can write the database.
A chain whose oldest records audit retention removed is verified from its
checkpoint on (see :mod:`store.audit_checkpoint`).
All of it is read in one snapshot, so appends during verification are not
mistaken for tampering.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from store.audit_checkpoint import Checkpoint, retained_start
from store.audit_log import RecordKind, source_key
from store.audit_tables import AuditChunkRow, AuditHead, AuditRecordRow
from store.chain import GENESIS, record_hash, sha256_hex
from store.database import Database

ERASE_ACTION = "audit.erase"  # an admin record whose detail lists the positions it erased
_CHUNK_FIELDS = ("position", "chunk_id", "doc_id", "source_hash", "version", "cited")


class ProblemKind(StrEnum):
    MISSING = "missing"
    BROKEN_LINK = "broken_link"
    EDITED = "edited"
    PERSONAL_MISMATCH = "personal_mismatch"
    INDEX_MISMATCH = "index_mismatch"
    HEAD_MISMATCH = "head_mismatch"
    ANCHOR_MISMATCH = "anchor_mismatch"


@dataclass(frozen=True, slots=True)
class Problem:
    chain: str
    seq: int
    record_id: str | None
    kind: ProblemKind
    detail: str

    def describe(self) -> str:
        where = f"tenant {self.chain}" if self.chain else "the system chain"
        record = f"record {self.seq}" + (f" (id {self.record_id})" if self.record_id else "")
        return f"{where}, {record}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainResult:
    chain: str
    records: int
    head_seq: int
    head_hash: str
    erased: int
    problem: Problem | None
    truncated_through: int = 0  # the last position audit retention removed (0: the chain is whole)


@dataclass(frozen=True, slots=True)
class Verification:
    chains: tuple[ChainResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(result.problem is None for result in self.chains)

    @property
    def records(self) -> int:
        return sum(result.records for result in self.chains)

    @property
    def problems(self) -> list[Problem]:
        """The first bad record of each chain that has one."""
        return [result.problem for result in self.chains if result.problem is not None]


def verify(
    database: Database,
    *,
    chains: Sequence[str] | None = None,
    anchors: Mapping[str, tuple[int, str]] | None = None,
    batch_size: int = 2000,
) -> Verification:
    """Verifies ``chains`` (default: every chain in the store) in one consistent snapshot."""
    started = time.perf_counter()
    with database.read(snapshot=True) as session:
        heads = {head.chain: head for head in session.execute(select(AuditHead)).scalars()}
        present = set(session.execute(select(AuditRecordRow.chain).distinct()).scalars())
        names = sorted(set(chains) if chains is not None else present | set(heads))
        results = tuple(
            _ChainCheck(
                session, chain, heads.get(chain), (anchors or {}).get(chain), batch_size, retained_start(session, chain)
            ).run()
            for chain in names
        )
    return Verification(chains=results, seconds=time.perf_counter() - started)


class _ChainCheck:
    def __init__(
        self,
        session: Session,
        chain: str,
        head: AuditHead | None,
        anchor: tuple[int, str] | None,
        batch_size: int,
        start: Checkpoint | None = None,
    ) -> None:
        self._session = session
        self._chain = chain
        self._head = head
        self._anchor = anchor
        self._batch_size = batch_size
        self._start = start  # records up to start.seq were removed by audited retention
        self._expected_seq = start.seq + 1 if start is not None else 1
        self._prev_hash = start.hash if start is not None else GENESIS
        self._erased: dict[int, str] = {}  # erased positions not yet explained by an erasure record
        self._erased_total = 0

    def run(self) -> ChainResult:
        problem = self._records() or self._erasures() or self._end()
        truncated = self._start.seq if self._start is not None else 0
        return ChainResult(
            chain=self._chain,
            records=self._expected_seq - 1 - truncated,
            head_seq=self._head.seq if self._head else 0,
            head_hash=self._head.hash if self._head else GENESIS,
            erased=self._erased_total,
            problem=problem,
            truncated_through=truncated,
        )

    def _records(self) -> Problem | None:
        for row, chunks in self._rows():
            problem = self._check(row, chunks)
            if problem is not None:
                return problem
            self._prev_hash = row.hash
            self._expected_seq += 1
        return None

    def _rows(self) -> Iterator[tuple[Row[Any], list[tuple[Any, ...]]]]:
        records, chunk_rows = AuditRecordRow.__table__, AuditChunkRow.__table__
        # The chunk rows as plain tuples in the order _index compares them: (position, ids..., cited).
        chunk_columns = [chunk_rows.c[name] for name in ("seq", *_CHUNK_FIELDS)]
        after = self._expected_seq - 1
        while True:
            batch = self._session.execute(
                select(records)
                .where(records.c.chain == self._chain, records.c.seq > after)
                .order_by(records.c.seq)
                .limit(self._batch_size)
            ).all()
            if not batch:
                return
            used: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
            found = self._session.execute(
                select(*chunk_columns)
                .where(
                    chunk_rows.c.chain == self._chain,
                    chunk_rows.c.seq > after,
                    chunk_rows.c.seq <= batch[-1].seq,
                )
                .order_by(chunk_rows.c.seq, chunk_rows.c.position)
            ).all()
            for chunk in found:
                used[chunk[0]].append((*chunk[1:-1], bool(chunk[-1])))
            for row in batch:
                yield row, used.get(row.seq, [])
            after = batch[-1].seq

    def _check(self, row: Row[Any], chunks: list[tuple[Any, ...]]) -> Problem | None:
        def problem(kind: ProblemKind, detail: str) -> Problem:
            return Problem(chain=self._chain, seq=row.seq, record_id=row.id, kind=kind, detail=detail)

        if row.seq != self._expected_seq:
            first, last = self._expected_seq, row.seq - 1
            gone = f"record {first} is" if first == last else f"records {first} to {last} are"
            return problem(ProblemKind.MISSING, f"{gone} missing (deleted)")
        if row.prev_hash != self._prev_hash:
            before = f"record {row.seq - 1}" if row.seq > 1 else "the chain's start"
            return problem(
                ProblemKind.BROKEN_LINK,
                f"does not follow {before}: a record was inserted before it, or records were deleted or reordered",
            )
        recomputed = record_hash(
            chain=row.chain,
            seq=row.seq,
            id=row.id,
            at_us=row.at_us,
            kind=row.kind,
            action=row.action,
            outcome=row.outcome,
            record=row.record,
            personal_digest=row.personal_digest,
            prev_hash=row.prev_hash,
        )
        if recomputed != row.hash:
            return problem(ProblemKind.EDITED, "its fields no longer match its hash (the record was edited)")
        try:
            record = json.loads(row.record)
        except ValueError:
            return problem(ProblemKind.EDITED, "its record is not JSON")
        mismatch = self._personal(row) or self._index(row, record, chunks)
        if mismatch is not None:
            return problem(*mismatch)
        if row.kind == RecordKind.ADMIN and row.action == ERASE_ACTION:
            for seq in record.get("detail", {}).get("erased", []):
                self._erased.pop(seq, None)
        return None

    def _personal(self, row: Row[Any]) -> tuple[ProblemKind, str] | None:
        if row.personal is None:
            if row.erased_at_us is None:
                return ProblemKind.PERSONAL_MISMATCH, "its personal fields were removed without an erasure mark"
            self._erased[row.seq] = row.id
            self._erased_total += 1
            return None
        if sha256_hex(row.personal) != row.personal_digest:
            return ProblemKind.PERSONAL_MISMATCH, "its personal fields (who, keys, question) were edited"
        try:
            actor = json.loads(row.personal).get("actor")
        except ValueError:
            actor = None
        if actor != row.actor:
            return ProblemKind.PERSONAL_MISMATCH, "its actor column no longer matches its chained actor"
        return None

    @staticmethod
    def _index(row: Row[Any], record: dict[str, Any], chunks: list[tuple[Any, ...]]) -> tuple[ProblemKind, str] | None:
        cited = set(record.get("cited", []))
        refs = record.get("retrieved", []) if row.kind != RecordKind.ADMIN else []
        expected = [
            (i, ref["chunk_id"], ref["doc_id"], source_key(ref["source"]), ref["version"], ref["chunk_id"] in cited)
            for i, ref in enumerate(refs)
        ]
        if chunks != expected:
            return ProblemKind.INDEX_MISMATCH, "its document index rows differ from the chunks it chains"
        return None

    def _erasures(self) -> Problem | None:
        if not self._erased:
            return None
        seq = min(self._erased)
        return Problem(
            chain=self._chain,
            seq=seq,
            record_id=self._erased[seq],
            kind=ProblemKind.PERSONAL_MISMATCH,
            detail="its personal fields were erased without an audited erasure naming it",
        )

    def _end(self) -> Problem | None:
        last = self._expected_seq - 1
        if self._anchor is not None:
            problem = self._anchored(*self._anchor, last=last)
            if problem is not None:
                return problem
        if self._head is None:
            if last == 0:
                return None
            return self._at_end(last, ProblemKind.HEAD_MISMATCH, "the chain has no head row")
        if self._head.seq > last:
            first = last + 1
            gone = f"record {first} is" if first == self._head.seq else f"records {first} to {self._head.seq} are"
            return self._at_end(first, ProblemKind.MISSING, f"{gone} missing at the end of the chain (deleted)")
        if self._head.seq < last:
            detail = "records follow the chain's head (added around the store)"
            return self._at_end(self._head.seq + 1, ProblemKind.HEAD_MISMATCH, detail)
        if self._head.hash != self._prev_hash:
            return self._at_end(last, ProblemKind.HEAD_MISMATCH, "the last record is not the one the head names")
        return None

    def _anchored(self, seq: int, hash_: str, *, last: int) -> Problem | None:
        if self._start is not None and seq <= self._start.seq:
            if (seq, hash_) == (self._start.seq, self._start.hash):
                return None
            # Not skipped: a forged truncation would otherwise hide a rewrite of the anchored part.
            detail = f"the anchored record was removed by audit retention (through {self._start.seq}): save new anchors"
            return self._at_end(seq, ProblemKind.ANCHOR_MISMATCH, detail)
        if seq > last:
            return self._at_end(seq, ProblemKind.ANCHOR_MISMATCH, f"the anchored record {seq} is gone")
        found = self._session.execute(
            select(AuditRecordRow.hash).where(AuditRecordRow.chain == self._chain, AuditRecordRow.seq == seq)
        ).scalar_one_or_none()
        if found != hash_:
            return self._at_end(seq, ProblemKind.ANCHOR_MISMATCH, "differs from the anchor taken earlier (rewritten)")
        return None

    def _at_end(self, seq: int, kind: ProblemKind, detail: str) -> Problem:
        return Problem(chain=self._chain, seq=seq, record_id=None, kind=kind, detail=detail)
