"""Translation of the security filter (a qdrant-client ``models.Filter``) to qdrant-edge types.

The filter is built once, by :func:`acl.index_filter.security_filter`; the
embedded engine only translates it, clause for clause. A shape this module does
not know raises :class:`InvalidInputError` before the engine is called: a
condition silently dropped from a ``must_not`` would widen access.
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from core.errors import InvalidInputError


def to_edge_filter(flt: models.Filter) -> qe.Filter:
    """The qdrant-client filter ``flt`` in qdrant-edge types, clause for clause.

    Supported: must / should / must_not / min_should, nested filters,
    FieldCondition with MatchValue (str, int), MatchAny, Range, is_empty or
    is_null, IsEmptyCondition, IsNullCondition and HasIdCondition. Anything
    else raises InvalidInputError: a condition silently dropped from a
    ``must_not`` would widen access.
    """
    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(
            conditions=[_condition(c) for c in flt.min_should.conditions], min_count=flt.min_should.min_count
        )
    return qe.Filter(
        must=_clause(flt.must), should=_clause(flt.should), must_not=_clause(flt.must_not), min_should=min_should
    )


def _clause(conditions: Any) -> list[qe.ConditionType] | None:
    if conditions is None:
        return None
    # qdrant-client accepts a single condition where a list is expected.
    items = conditions if isinstance(conditions, list) else [conditions]
    return [_condition(item) for item in items]


def _condition(condition: Any) -> qe.ConditionType:
    if isinstance(condition, models.Filter):
        return to_edge_filter(condition)
    if isinstance(condition, models.FieldCondition):
        return _field_condition(condition)
    if isinstance(condition, models.IsEmptyCondition):
        return qe.IsEmptyCondition(key=condition.is_empty.key)
    if isinstance(condition, models.IsNullCondition):
        return qe.IsNullCondition(key=condition.is_null.key)
    if isinstance(condition, models.HasIdCondition):
        return qe.HasIdCondition(
            point_ids={point_id if isinstance(point_id, int) else str(point_id) for point_id in condition.has_id}
        )
    raise InvalidInputError(f"filter condition {type(condition).__name__} is not supported by the embedded index")


def _field_condition(condition: models.FieldCondition) -> qe.FieldCondition:
    unsupported = [
        name
        for name in ("geo_bounding_box", "geo_radius", "geo_polygon", "values_count")
        if getattr(condition, name) is not None
    ]
    given = [name for name in ("match", "range", "is_empty", "is_null") if getattr(condition, name) is not None]
    if unsupported or len(given) != 1:
        raise InvalidInputError(
            f"field condition on {condition.key!r} must carry exactly one of match, range, is_empty, is_null"
        )
    key, match, bounds = condition.key, condition.match, condition.range
    if condition.is_empty is not None:
        return qe.FieldCondition(key=key, is_empty=condition.is_empty)
    if condition.is_null is not None:
        return qe.FieldCondition(key=key, is_null=condition.is_null)
    if isinstance(bounds, models.Range):
        return qe.FieldCondition(
            key=key, range=qe.RangeFloat(gte=bounds.gte, gt=bounds.gt, lte=bounds.lte, lt=bounds.lt)
        )
    if isinstance(match, models.MatchValue) and not isinstance(match.value, bool):
        # Booleans are refused: the engine's binding reads True as the integer 1 and then
        # matches no stored boolean, so a must_not on a boolean would exclude nothing.
        return qe.FieldCondition(key=key, match=qe.MatchValue(value=match.value))
    if isinstance(match, models.MatchAny):
        return qe.FieldCondition(key=key, match=qe.MatchAny(any=match.any))
    raise InvalidInputError(
        f"condition on {key!r} ({type(match or bounds).__name__}) is not supported by the embedded index"
    )
