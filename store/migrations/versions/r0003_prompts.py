"""Prompt templates and their activation history.

Revision ID: 0003_prompts
Revises: 0002_ingest_jobs
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0003_prompts"
down_revision: str | None = "0002_ingest_jobs"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass  # the feature that owns this revision fills it in


def downgrade() -> None:
    pass
