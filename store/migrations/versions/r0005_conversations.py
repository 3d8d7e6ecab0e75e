"""Conversations and their turns.

Revision ID: 0005_conversations
Revises: 0004_feedback_review
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0005_conversations"
down_revision: str | None = "0004_feedback_review"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # the feature that owns this revision fills it in


def downgrade() -> None:
    pass
