"""credential kind: API tokens and SSH keys are a person's or an agent's

Revision ID: 0008
Revises: 0007

Existing rows become `agent`: they were made before the distinction, and `agent` is the
kind that cannot dodge a target's policy (docs/security.md). An owner who wants a
person's credential makes a new one with `kind: "person"`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("api_tokens", "ssh_keys")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("kind", sa.String(length=16), nullable=False, server_default="agent")
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("kind")
