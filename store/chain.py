"""The audit hash chain, as pure functions: canonical JSON, record hashes, digests and fingerprints.

A record's hash covers its place (chain, seq), identity, time, kind, action,
outcome, the digest of its personal fields, the previous record's hash, and its
non-personal fields as stored (canonical JSON text):

    hash = SHA-256("clearance-audit/1\\n" + canonical JSON of the other fields + "\\n" + record text)

Personal fields (who asked, their principal keys, the question) are chained
through a digest of their canonical JSON, which carries a random salt, so that
erasing them later ("forget user") leaves every hash intact, and the digest
cannot be tested against guessed questions or users. Canonical JSON is ASCII
(``ensure_ascii``), sorted keys, no whitespace and no NaN: the same bytes on
every backend, for any input, including text that is not valid UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "0" * 64  # the prev_hash of every chain's first record
_DOMAIN = b"clearance-audit/1\n"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def record_hash(
    *,
    chain: str,
    seq: int,
    id: str,
    at_us: int,
    kind: str,
    action: str,
    outcome: str,
    record: str,
    personal_digest: str,
    prev_hash: str,
) -> str:
    """The hash of one record; ``record`` is its stored canonical JSON text, hashed as stored.

    The fields other than ``record`` are hashed as canonical JSON (one line: JSON
    escapes every newline), then a newline, then the record text itself, so the
    record is not escaped a second time and the encoding stays unambiguous.
    """
    header = {
        "chain": chain,
        "seq": seq,
        "id": id,
        "at_us": at_us,
        "kind": kind,
        "action": action,
        "outcome": outcome,
        "personal_digest": personal_digest,
        "prev_hash": prev_hash,
    }
    digest = hashlib.sha256(_DOMAIN)
    digest.update(canonical(header).encode("ascii"))
    digest.update(b"\n")
    digest.update(record.encode("ascii"))
    return digest.hexdigest()


def personal_text(personal: Mapping[str, Any], *, actor: str) -> str:
    """The canonical JSON of a record's personal fields, with the actor and a fresh 128-bit salt."""
    return canonical({**personal, "actor": actor, "salt": secrets.token_hex(16)})


def principals_fingerprint(keys: Iterable[str]) -> str:
    """What access a caller had, without who they are: a digest of their group and tenant keys.

    The caller's own ``user:`` key is left out, so the fingerprint stays in the
    chain after "forget user" without naming the person; two callers with the
    same groups share it, which is what makes it useful for comparing answers.
    """
    shared = sorted(key for key in set(keys) if not key.startswith("user:"))
    return sha256_hex(canonical(shared))
