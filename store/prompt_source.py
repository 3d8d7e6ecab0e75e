"""The answer service's prompt source over the store: the tenant's active version, read on every request.

One primary-key read of ``prompt_active`` per answer tells which version is
active; its text comes from a cache, which is safe without invalidation because
a stored version never changes. So an activation or rollback by any process
(another replica, ``clearance prompts`` at the command line) applies to the
next answer everywhere, with no restart, no TTL and no message bus, and each
answer gets one whole, immutable template: never half of one version and half
of another. When the store cannot be read the answer fails (503) rather than
guessing a version: answers need the store for their audit record anyway.
"""

from __future__ import annotations

from sqlalchemy import select

from retrieval.prompt_files import builtin_default
from retrieval.prompt_template import PromptTemplate
from store.database import Database, unavailable_as_error
from store.errors import StoreUnavailableError
from store.prompt_tables import PromptActiveRow, PromptVersionRow

MAX_CACHED_VERSIONS = 256


class StorePromptSource:
    """Implements ``retrieval.prompts.PromptSource``."""

    def __init__(self, *, database: Database) -> None:
        # PostgreSQL: one round trip per read instead of three (BEGIN, SELECT, ROLLBACK); a single-row read
        # needs no transaction, and the version it names never changes, so a second read cannot disagree.
        self._engine = (
            database.engine.execution_options(isolation_level="AUTOCOMMIT")
            if database.backend == "postgresql"
            else database.engine
        )
        # (owner, name, version) -> template; versions are immutable, so an entry is never stale.
        self._templates: dict[tuple[str, str, str], PromptTemplate] = {}

    def active(self, tenant_id: str, name: str) -> PromptTemplate:
        with unavailable_as_error(), self._engine.connect() as connection:
            found = connection.execute(
                select(PromptActiveRow.owner, PromptActiveRow.version).where(
                    PromptActiveRow.tenant_id == tenant_id, PromptActiveRow.name == name
                )
            ).first()
            if found is None:
                return builtin_default(name)
            key = (found.owner, name, found.version)
            template = self._templates.get(key)
            if template is not None:
                return template
            row = connection.execute(
                select(PromptVersionRow.system, PromptVersionRow.user, PromptVersionRow.description).where(
                    PromptVersionRow.owner == key[0],
                    PromptVersionRow.name == name,
                    PromptVersionRow.version == key[2],
                )
            ).first()
        if row is None:  # the foreign key forbids it; answer with no guessed version
            raise StoreUnavailableError(f"the active prompt {name}/{key[2]} is missing from the state store")
        template = PromptTemplate(
            name=name, version=key[2], system=row.system, user=row.user, description=row.description
        )
        if len(self._templates) >= MAX_CACHED_VERSIONS:
            self._templates.clear()  # rare (hundreds of versions in use); correctness never depends on it
        self._templates[key] = template
        return template
