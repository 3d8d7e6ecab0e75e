"""The development directory: sample tenants, groups and users from a JSON file.

It backs the development identity provider (who can get a token) and, for
group overage, a :class:`GroupResolver` the way Microsoft Graph will in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import GroupResolutionError, InvalidInputError, NotFoundError


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    name: str
    display_name: str
    title: str
    tenant: str
    oid: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    guest: bool


@dataclass(frozen=True, slots=True)
class Directory:
    """Users and group names of one or more tenants."""

    users: tuple[DirectoryUser, ...]
    group_names: dict[str, str]
    tenant_names: dict[str, str]
    tenant_domains: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> Directory:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            users = tuple(
                DirectoryUser(
                    name=u["name"],
                    display_name=u["display_name"],
                    title=u.get("title", ""),
                    tenant=u["tenant"],
                    oid=u["oid"],
                    groups=tuple(u.get("groups", [])),
                    roles=tuple(u.get("roles", [])),
                    guest=bool(u.get("guest", False)),
                )
                for u in raw["users"]
            )
            group_names = {g["id"]: g["name"] for g in raw.get("groups", [])}
            tenant_names = {t["id"]: t["name"] for t in raw.get("tenants", [])}
            tenant_domains = {t["id"]: t.get("domain", "") for t in raw.get("tenants", [])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"cannot read directory {path}: {exc}") from exc
        return cls(users=users, group_names=group_names, tenant_names=tenant_names, tenant_domains=tenant_domains)

    def user(self, name: str) -> DirectoryUser:
        for user in self.users:
            if user.name == name:
                return user
        raise NotFoundError(f"no sample user named {name!r}")


class DirectoryGroupResolver:
    """Resolves group overage from the development directory."""

    def __init__(self, *, directory: Directory) -> None:
        # Keys in the canonical (lower-case) form the token validator asks with.
        self._by_id = {(u.tenant.lower(), u.oid.lower()): frozenset(u.groups) for u in directory.users}

    def member_groups(self, tenant_id: str, object_id: str) -> frozenset[str]:
        try:
            return self._by_id[(tenant_id.lower(), object_id.lower())]
        except KeyError:
            raise GroupResolutionError("user is not in the directory") from None
