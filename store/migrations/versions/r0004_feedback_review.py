"""Feedback on answers and the human review queue.

Revision ID: 0004_feedback_review
Revises: 0003_prompts
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0004_feedback_review"
down_revision: str | None = "0003_prompts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # the feature that owns this revision fills it in


def downgrade() -> None:
    pass
