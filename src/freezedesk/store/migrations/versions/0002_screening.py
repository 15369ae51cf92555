"""screening

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:38:29.218728
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('list_loads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sources', sa.Text(), nullable=False),
    sa.Column('entities', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_loads'))
    )
    op.create_table('sanctions_entities',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sanctions_entities'))
    )
    with op.batch_alter_table('sanctions_entities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sanctions_entities_source'), ['source'], unique=False)

    op.create_table('account_identities',
    sa.Column('account_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('schema', sa.String(length=16), nullable=False),
    sa.Column('birth_date', sa.String(length=10), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_identities_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_identities'))
    )
    op.create_table('screening_hits',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=128), nullable=False),
    sa.Column('entity_id', sa.String(length=128), nullable=False),
    sa.Column('entity_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('score', sa.String(length=8), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=True),
    sa.Column('restriction_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_screening_hits_account_id_accounts')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_screening_hits_case_id_cases')),
    sa.ForeignKeyConstraint(['restriction_id'], ['restrictions.id'], name=op.f('fk_screening_hits_restriction_id_restrictions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_screening_hits'))
    )
    with op.batch_alter_table('screening_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_screening_hits_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_screening_hits_pair', ['account_id', 'entity_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('screening_hits', schema=None) as batch_op:
        batch_op.drop_index('ix_screening_hits_pair')
        batch_op.drop_index(batch_op.f('ix_screening_hits_account_id'))

    op.drop_table('screening_hits')
    op.drop_table('account_identities')
    with op.batch_alter_table('sanctions_entities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sanctions_entities_source'))

    op.drop_table('sanctions_entities')
    op.drop_table('list_loads')
