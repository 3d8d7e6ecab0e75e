"""Ingestion job records.

Revision ID: 0002_ingest_jobs
Revises: 0001_audit
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ingest_jobs"
down_revision: str | None = "0001_audit"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_jobs"),
    )
    op.create_index("ix_ingest_jobs_tenant_created", "ingest_jobs", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_table("ingest_jobs")
