"""spent agent proofs (single use)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_proofs",
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", hub.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "jti"),
    )
    with op.batch_alter_table("agent_proofs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_proofs_expires_at"), ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("agent_proofs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_proofs_expires_at"))
    op.drop_table("agent_proofs")
