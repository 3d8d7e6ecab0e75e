"""The audit: chained records, chain heads, and the chunks each answer used.

Revision ID: 0001_audit
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_audit"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_heads"),
    )
    op.create_table(
        "audit_records",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("personal", sa.Text(), nullable=True),
        sa.Column("personal_digest", sa.String(64), nullable=False),
        sa.Column("erased_at_us", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", "seq", name="pk_audit_records"),
        sa.UniqueConstraint("chain", "prev_hash", name="uq_audit_records_chain_prev_hash"),
        sa.UniqueConstraint("id", name="uq_audit_records_id"),
    )
    op.create_index("ix_audit_records_chain_actor", "audit_records", ["chain", "actor", "seq"])
    op.create_index("ix_audit_records_chain_at", "audit_records", ["chain", "at_us"])
    op.create_table(
        "audit_chunks",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.Text(), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("cited", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain", "seq"],
            ["audit_records.chain", "audit_records.seq"],
            name="fk_audit_chunks_chain_audit_records",
        ),
        sa.PrimaryKeyConstraint("chain", "seq", "position", name="pk_audit_chunks"),
    )
    op.create_index("ix_audit_chunks_chain_doc", "audit_chunks", ["chain", "doc_id"])
    op.create_index("ix_audit_chunks_chain_source", "audit_chunks", ["chain", "source_hash"])


def downgrade() -> None:
    op.drop_table("audit_chunks")
    op.drop_table("audit_records")
    op.drop_table("audit_heads")
