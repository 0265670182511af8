"""ssh keys unique per user

Revision ID: 0009
Revises: 0008

An SSH key is now unique per account, not across accounts, so that nobody can register
someone else's public key first (docs/security.md). (Passcode secrets are sealed in
place, in the same column, by the hub when it starts: hub/passcodes.py, since the key
is kept outside the database.)
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# SQLite's unique constraint from 0005 has no name: this convention gives it one.
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _global_unique() -> str:
    """The name of 0005's constraint: PostgreSQL named it <table>_<column>_key."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    return "uq_ssh_keys_fingerprint" if sqlite else "ssh_keys_fingerprint_key"


def upgrade() -> None:
    with op.batch_alter_table("ssh_keys", naming_convention=_NAMES) as batch:
        batch.drop_constraint(_global_unique(), type_="unique")
        batch.create_unique_constraint("uq_ssh_keys_user_fingerprint", ["user_id", "fingerprint"])
        batch.create_index("ix_ssh_keys_fingerprint", ["fingerprint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ssh_keys", naming_convention=_NAMES) as batch:
        batch.drop_index("ix_ssh_keys_fingerprint")
        batch.drop_constraint("uq_ssh_keys_user_fingerprint", type_="unique")
        batch.create_unique_constraint(_global_unique(), ["fingerprint"])
