"""The state store: SQLAlchemy 2 over a SQLite file (the default) or PostgreSQL.

Layer: above ``ingest``/``retrieval`` (it implements their ports: the audit sink,
the job store), below ``api``. Only the composition root opens a store.

Adding a kind of record (prompts, conversations, feedback, review items) is one
module and one migration:

1. ``store/<feature>.py``: the table(s) as classes of :class:`store.base.Base`
   and a repository over :class:`store.database.Database` (``db.write()`` for
   writes, ``db.read()`` for reads; both turn an unreachable database into
   :class:`store.errors.StoreUnavailableError`);
2. ``store/migrations/versions/NNNN_<feature>.py``: the DDL, with ``down_revision``
   set to the previous head. Import the feature module in
   ``store/migrations/env.py`` so ``alembic revision --autogenerate`` sees it.

Modules: ``database`` (engines, sessions, SQLite and PostgreSQL specifics),
``migrate`` (Alembic, programmatic), ``chain`` (the audit hash chain, pure),
``audit_tables``/``audit_log``/``audit_verify`` (the tamper-evident audit), ``jobs``
(ingestion job records), ``conversations`` (each user's chats), ``retention`` with
``audit_retention``/``audit_checkpoint`` (windows per kind of record, forget-user, and
cutting a chain's oldest records behind a verifiable checkpoint).
"""
