"""case timeline entries that are not state changes; alert list index

A case's timeline (``case_events``) records state changes; a monitoring alert attached to the case
is now recorded there too, as an entry without a state (``to_state`` NULL) whose details are in
``data`` (JSON). The staff list of alerts reads ``monitoring_alerts`` newest first by ``ts``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data', sa.Text(), nullable=True))
        batch_op.alter_column('to_state', existing_type=sa.String(length=32), nullable=True)

    with op.batch_alter_table('monitoring_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_monitoring_alerts_ts_id', ['ts', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('monitoring_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_monitoring_alerts_ts_id')

    # Entries without a state (alerts) cannot survive NOT NULL; their alerts stay in monitoring_alerts.
    op.execute("DELETE FROM case_events WHERE to_state IS NULL")
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.alter_column('to_state', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column('data')
