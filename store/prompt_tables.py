"""The prompt tables: immutable versions, each tenant's activation history, and each tenant's active version.

- ``prompt_versions``: one row per version, never updated. ``owner`` is ``""``
  for the built-ins seeded from ``retrieval/prompt_templates/`` (visible to every
  tenant) or the tenant id that added it (visible to that tenant alone).
- ``prompt_activations``: every activation and rollback of a tenant, in order;
  rollback replays it as a stack (activate pushes, rollback pops).
- ``prompt_active``: the tenant's current version, one primary-key read per
  answer. No row means the built-in default. Its foreign key makes an active
  version that does not exist impossible.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base

BUILTIN = ""  # the owner of versions shipped with the code


class PromptVersionRow(Base):
    __tablename__ = "prompt_versions"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    system: Mapped[str] = mapped_column(Text)
    user: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))


class PromptActivationRow(Base):
    __tablename__ = "prompt_activations"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # activate, rollback
    owner: Mapped[str] = mapped_column(String(64))  # the version active after this row
    version: Mapped[str] = mapped_column(String(32))
    previous: Mapped[str] = mapped_column(String(32))  # the version it replaced
    gate: Mapped[str] = mapped_column(String(16))  # passed, forced, rollback
    actor: Mapped[str] = mapped_column(String(200))
    at_us: Mapped[int] = mapped_column(BigInteger)


class PromptActiveRow(Base):
    __tablename__ = "prompt_active"
    __table_args__ = (
        ForeignKeyConstraint(
            ["owner", "name", "version"], ["prompt_versions.owner", "prompt_versions.name", "prompt_versions.version"]
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)  # the activation row that made it active
