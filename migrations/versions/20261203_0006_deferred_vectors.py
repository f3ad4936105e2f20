"""deferred vectors: articles matched without a vector are embedded later, when matching is idle

Revision ID: 0006_deferred_vectors
Revises: 0005_webapp
Create Date: 2026-12-03 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_deferred_vectors"
down_revision: str | None = "0005_webapp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTERs, no batch "move and copy": SQLite adds a column with a constant default and
    # creates or drops an index in place, so a million-article table is not copied
    op.add_column(
        "articles",
        sa.Column("vector_deferred", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_articles_vector_deferred", "articles", ["vector_deferred", "id"], unique=False
    )
    op.create_index(
        "ix_embeddings_model_id_created_at",
        "embeddings",
        ["model_id", "created_at"],
        unique=False,
    )
    op.drop_index("ix_embeddings_model_id", table_name="embeddings")


def downgrade() -> None:
    op.create_index("ix_embeddings_model_id", "embeddings", ["model_id"], unique=False)
    op.drop_index("ix_embeddings_model_id_created_at", table_name="embeddings")
    op.drop_index("ix_articles_vector_deferred", table_name="articles")
    with op.batch_alter_table("articles") as batch_op:  # SQLite < 3.35 cannot drop a column
        batch_op.drop_column("vector_deferred")
