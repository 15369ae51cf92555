"""accounts.events_counted: how many events of the account are stored

Kept by event ingestion (``monitoring.ingest.ingest_in``) in the transaction that stores the
events, under the account's row lock; the in-process monitor compares it with how many events its
engine has counted to notice events another server process stored. Existing accounts are
back-filled from the ``events`` table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('events_counted', sa.BigInteger(), server_default=sa.text('0'),
                                      nullable=False))

    # Only the accounts that have events (the rest keep the default); one index probe each
    # (ix_events_account_ts). Same statement on SQLite and PostgreSQL.
    op.execute(
        "UPDATE accounts SET events_counted = "
        "(SELECT count(*) FROM events WHERE events.account_id = accounts.id) "
        "WHERE EXISTS (SELECT 1 FROM events WHERE events.account_id = accounts.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('events_counted')
