"""A caller as an audit record remembers them: the principal keys they held when they were answered.

Review shows a reviewer the passages an answer was built from, read from the
index under the *asker's* keys as recorded, never under the reviewer's own.
This module turns those recorded keys back into a :class:`Principal` whose
:meth:`Principal.access_keys` are exactly the recorded ones, so the one
security-filter builder applies. Anything it cannot read back with certainty
(a key of another tenant or user, an unknown kind, a malformed id, no keys)
yields None: nobody.
"""

from __future__ import annotations

from collections.abc import Iterable

from acl.principal import Principal, is_valid_id


def principal_from_keys(*, tenant_id: str, object_id: str, keys: Iterable[object]) -> Principal | None:
    """The principal that holds exactly ``keys`` as ``object_id`` of ``tenant_id``; None when unsure."""
    if not (is_valid_id(tenant_id) and is_valid_id(object_id)):
        return None
    tenant, user = tenant_id.lower(), object_id.lower()
    groups: set[str] = set()
    member = has_user = False
    recorded: set[str] = set()
    for key in keys:
        if not isinstance(key, str):
            return None
        recorded.add(key)
        kind, _, rest = key.partition(":")
        key_tenant, _, subject = rest.partition("/")
        if key_tenant != tenant:
            return None
        if kind == "tenant" and not subject:
            member = True
        elif kind == "user" and subject == user:
            has_user = True
        elif kind == "group" and is_valid_id(subject) and subject == subject.lower():
            groups.add(subject)
        else:
            return None
    if not has_user:
        return None  # every answer's keys include its asker's own: a record without it is not one we understand
    principal = Principal(tenant_id=tenant, object_id=user, groups=frozenset(groups), guest=not member)
    # Read back, the keys must be exactly the recorded ones; any difference means a reading we do not trust.
    return principal if principal.access_keys() == recorded else None
