"""Feedback on answers, the human review queue, and the answer texts they show.

Revision ID: 0004_feedback_review
Revises: 0003_prompts
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_feedback_review"
down_revision: str | None = "0003_prompts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "answer_texts",
        sa.Column("answer_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("answer_id", name="pk_answer_texts"),
    )
    op.create_index("ix_answer_texts_tenant_user", "answer_texts", ["tenant_id", "object_id"])
    op.create_index("ix_answer_texts_created", "answer_texts", ["created_at"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("answer_id", sa.String(64), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("tenant_id", "object_id", "answer_id", name="uq_feedback_tenant_id_object_id_answer_id"),
    )
    op.create_index("ix_feedback_tenant_answer", "feedback", ["tenant_id", "answer_id"])
    op.create_index("ix_feedback_updated", "feedback", ["updated_at"])

    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("answer_id", sa.String(64), nullable=False),
        sa.Column("asker", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("feedback_reason", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("resolver", sa.String(200), nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("expected_answer", sa.Text(), nullable=True),
        sa.Column("expected_sources", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.UniqueConstraint("tenant_id", "answer_id", name="uq_review_items_tenant_id_answer_id"),
    )
    op.create_index("ix_review_items_tenant_status", "review_items", ["tenant_id", "status", "updated_at"])
    op.create_index("ix_review_items_tenant_asker", "review_items", ["tenant_id", "asker"])
    op.create_index("ix_review_items_updated", "review_items", ["updated_at"])


def downgrade() -> None:
    op.drop_table("review_items")
    op.drop_table("feedback")
    op.drop_table("answer_texts")
