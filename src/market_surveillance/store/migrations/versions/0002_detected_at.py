"""Alerts carry ``detected_at``: the event time at which the decision could first be made.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("detected_at", sa.DateTime(timezone=True)))
    # alerts stored before online detection existed were decided at the end of their window
    op.execute("UPDATE alerts SET detected_at = window_end WHERE detected_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("detected_at")
