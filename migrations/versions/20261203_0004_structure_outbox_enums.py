"""typed outbox: CHECK constraints on deliveries.kind and deliveries.status

The outbox's kind and status are enums in code (``monitor.domain.DeliveryKind`` and
``DeliveryStatus``); the database now holds the columns to their values. An alert row's kind is
called ``alert`` everywhere (it was stored as ``match`` while messages and webhooks said
``alert``), so existing rows are renamed first.

Revision ID: 0004_structure
Revises: 0003
Create Date: 2026-12-03 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_structure"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the values at this revision (copied, not imported: a migration must not change with the code)
KINDS = ("alert", "digest", "health", "test")
STATUSES = ("pending", "sending", "sent", "failed", "queued_digest", "digested")


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.execute("UPDATE deliveries SET kind = 'alert' WHERE kind = 'match'")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_deliveries_kind"), _one_of("kind", KINDS))
        batch_op.create_check_constraint(op.f("ck_deliveries_status"), _one_of("status", STATUSES))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_deliveries_status"), type_="check")
        batch_op.drop_constraint(op.f("ck_deliveries_kind"), type_="check")
    op.execute("UPDATE deliveries SET kind = 'match' WHERE kind = 'alert'")
