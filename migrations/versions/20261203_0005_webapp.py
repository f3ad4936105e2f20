"""web app: indexes for the matches page sorted by score; feedback_events (judgement history)

Revision ID: 0005_webapp
Revises: 0004_structure
Create Date: 2026-12-03 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_webapp"
down_revision: str | None = "0004_structure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_matches_topic_id_score", "matches", ["topic_id", "score"], unique=False)
    op.create_index("ix_matches_score", "matches", ["score"], unique=False)
    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("match_id", sa.Integer(), nullable=True),
        sa.Column("relevant", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_feedback_events_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["match_id"],
            ["matches.id"],
            name=op.f("fk_feedback_events_match_id_matches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_feedback_events_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_events")),
    )
    op.create_index(
        "ix_feedback_events_article_id", "feedback_events", ["article_id"], unique=False
    )
    # the judgements made before this version, as their first event
    op.execute(
        "INSERT INTO feedback_events (article_id, topic_id, match_id, relevant, created_at) "
        "SELECT article_id, topic_id, match_id, relevant, created_at FROM feedback"
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_events_article_id", table_name="feedback_events")
    op.drop_table("feedback_events")
    op.drop_index("ix_matches_score", table_name="matches")
    op.drop_index("ix_matches_topic_id_score", table_name="matches")
