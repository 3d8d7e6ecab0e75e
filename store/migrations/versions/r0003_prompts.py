"""Prompt templates and their activation history.

Revision ID: 0003_prompts
Revises: 0002_ingest_jobs
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_prompts"
down_revision: str | None = "0002_ingest_jobs"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("owner", "name", "version", name="pk_prompt_versions"),
    )
    op.create_table(
        "prompt_activations",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("previous", sa.String(32), nullable=False),
        sa.Column("gate", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", "seq", name="pk_prompt_activations"),
    )
    op.create_table(
        "prompt_active",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner", "name", "version"],
            ["prompt_versions.owner", "prompt_versions.name", "prompt_versions.version"],
            name="fk_prompt_active_owner_prompt_versions",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name", name="pk_prompt_active"),
    )


def downgrade() -> None:
    op.drop_table("prompt_active")
    op.drop_table("prompt_activations")
    op.drop_table("prompt_versions")
