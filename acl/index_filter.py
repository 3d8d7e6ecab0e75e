"""The one function that turns a caller into the index's security filter.

The filter is a typed Qdrant filter, built here and nowhere else. It is always
the outermost ``must`` of a query; anything a caller adds is nested inside it
as a further ``must`` condition, so a caller's filter can only narrow.
"""

from __future__ import annotations

from qdrant_client import models

from acl.principal import Principal
from core.errors import AccessDeniedError

ALLOW_FIELD = "acl_allow"
DENY_FIELD = "acl_deny"
TENANT_FIELD = "tenant_id"
STATE_FIELD = "state"
LIVE_STATE = "live"


def security_filter(principal: Principal, *, narrowing: models.Filter | None = None) -> models.Filter:
    """Chunks this principal may read, optionally narrowed by a caller's filter.

    Fails closed: a principal that yields no keys raises instead of searching
    unfiltered. Chunks must belong to the caller's tenant, be live (not staged
    by an in-progress replacement), carry an allow entry the caller holds and
    no deny entry the caller holds.
    """
    keys = sorted(principal.access_keys())
    if not keys:
        raise AccessDeniedError("caller has no principals; refusing to search")
    must: list[models.Condition] = [
        models.FieldCondition(key=TENANT_FIELD, match=models.MatchValue(value=principal.tenant_id)),
        models.FieldCondition(key=STATE_FIELD, match=models.MatchValue(value=LIVE_STATE)),
        models.FieldCondition(key=ALLOW_FIELD, match=models.MatchAny(any=keys)),
    ]
    if narrowing is not None:
        must.append(narrowing)
    return models.Filter(
        must=must,
        must_not=[models.FieldCondition(key=DENY_FIELD, match=models.MatchAny(any=keys))],
    )
