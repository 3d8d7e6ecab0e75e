"""The one function that turns a caller into the index's security filter.

The filter is a typed Qdrant filter, built here and nowhere else. It is always
the outermost ``must`` of a query; anything a caller adds is nested inside it
as a further ``must`` condition, so a caller's filter can only narrow.

A chunk's *read keys* (:data:`READ_FIELD`) fold three checks into one indexed
field: the chunk's tenant, its live state and its allow list. Each allow entry
is written as ``{tenant of the chunk}#{entry}``, and only when the chunk is
published; a staged chunk, and a chunk written before read keys existed, holds
none and so matches nobody. The engine then checks one indexed condition and the
deny list per point instead of four conditions (at 100k chunks and 46 %
selectivity a graph search took 5.5 ms with four and 2.1 ms with two).
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from qdrant_client import models

from acl.principal import Principal
from core.errors import AccessDeniedError

ALLOW_FIELD = "acl_allow"
DENY_FIELD = "acl_deny"
READ_FIELD = "acl_read"
TENANT_FIELD = "tenant_id"
STATE_FIELD = "state"
LIVE_STATE = "live"
_READ_KEY_SEPARATOR = "#"


def read_keys(tenant_id: str, allow: Iterable[str]) -> list[str]:
    """The read keys of a live chunk of ``tenant_id`` whose allow list is ``allow`` (sorted; none: nobody).

    The tenant is the chunk's own, not one parsed from the entries: an entry naming
    another tenant's group still only matches callers of the chunk's tenant who hold it.
    """
    if not tenant_id or _READ_KEY_SEPARATOR in tenant_id:
        return []  # no tenant, or one that could forge another tenant's prefix: nobody
    return sorted(f"{tenant_id}{_READ_KEY_SEPARATOR}{key}" for key in set(allow) if key)


def security_filter(
    principal: Principal,
    *,
    narrowing: models.Filter | None = None,
    deny_vocabulary: Set[str] | None = None,
) -> models.Filter:
    """Chunks this principal may read, optionally narrowed by a caller's filter.

    Fails closed: a principal that yields no keys raises instead of searching
    unfiltered. A chunk must hold a read key of the caller (so it belongs to the
    caller's tenant, is live and allows a key the caller holds) and no deny entry
    the caller holds.

    ``deny_vocabulary`` is every entry that any chunk of the index holds in its deny
    list (a superset is fine, a missing entry is a leak). A caller's key outside it
    can match no deny list, so only the caller's keys inside it are checked (none:
    no deny condition at all). For a caller of 500 groups the deny check was the
    costliest part of a filtered search. Only an index that sees every write of its
    chunks may pass one (one process owns an edge shard); None checks every key.
    """
    keys = sorted(principal.access_keys())
    readable = read_keys(principal.tenant_id, keys)
    if not keys or not readable:
        raise AccessDeniedError("caller has no principals; refusing to search")
    must: list[models.Condition] = [models.FieldCondition(key=READ_FIELD, match=models.MatchAny(any=readable))]
    if narrowing is not None:
        must.append(narrowing)
    denied = keys if deny_vocabulary is None else [key for key in keys if key in deny_vocabulary]
    return models.Filter(
        must=must,
        must_not=[models.FieldCondition(key=DENY_FIELD, match=models.MatchAny(any=denied))] if denied else None,
    )
