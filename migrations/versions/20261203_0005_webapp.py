"""web app: indexes for the matches page sorted by score

Revision ID: 0005_webapp
Revises: 0003
Create Date: 2026-12-03 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_webapp"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_matches_topic_id_score", "matches", ["topic_id", "score"], unique=False)
    op.create_index("ix_matches_score", "matches", ["score"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_matches_score", table_name="matches")
    op.drop_index("ix_matches_topic_id_score", table_name="matches")
