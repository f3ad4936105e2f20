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
    with op.batch_alter_table("articles") as batch_op:
        batch_op.add_column(
            sa.Column("vector_deferred", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            "ix_articles_vector_deferred", ["vector_deferred", "id"], unique=False
        )
    with op.batch_alter_table("embeddings") as batch_op:
        batch_op.create_index(
            "ix_embeddings_model_id_created_at", ["model_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_embeddings_model_id")


def downgrade() -> None:
    with op.batch_alter_table("embeddings") as batch_op:
        batch_op.create_index("ix_embeddings_model_id", ["model_id"], unique=False)
        batch_op.drop_index("ix_embeddings_model_id_created_at")
    with op.batch_alter_table("articles") as batch_op:
        batch_op.drop_index("ix_articles_vector_deferred")
        batch_op.drop_column("vector_deferred")
