"""staff rows are people: a unique handle (e-mail or stable handle) and a deactivation time

Before this revision every staff API key created its own staff row, so one human holding two keys
counted as two approvers. From now on a staff key names its person (``api-keys create --staff``)
and a second key of the same person reuses the row. ``handle`` is stored lower-case and is unique.

Existing rows cannot be matched to people after the fact: each keeps being its own person, with
``handle`` set to its id, lower-cased (``stf_01j…``). An operator who knows that two such rows are
one human deactivates one of them (``freezedesk staff deactivate``) and gives that human a new key
with ``--staff <their stf_… handle>``.

Downgrade drops both columns (people with several keys then look like one row per person still:
the keys keep their ``staff_id``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _columns(people: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    ]
    if people:
        columns += [sa.Column('handle', sa.String(length=254), nullable=False),
                    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True)]
    return columns


def _rebuild_on_sqlite(people: bool) -> None:
    """SQLite cannot add a NOT NULL column or a constraint in place, and ``api_keys.staff_id``
    references ``staff`` (foreign keys on, which cannot change inside a transaction). So the rows are
    copied aside, ``staff`` is dropped and created anew, and the rows go back in: with the checks
    deferred to the commit, the orphaned keys find their person again before it."""
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE _staff_0008 AS SELECT id, name, role, created_at FROM staff")
    op.drop_table('staff')
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint('id', name=op.f('pk_staff'))]
    if people:
        constraints.append(sa.UniqueConstraint('handle', name=op.f('uq_staff_handle')))
    op.create_table('staff', *_columns(people), *constraints)
    if people:
        op.execute("INSERT INTO staff (id, name, role, created_at, handle, deactivated_at) "
                   "SELECT id, name, role, created_at, lower(id), NULL FROM _staff_0008")
    else:
        op.execute("INSERT INTO staff (id, name, role, created_at) SELECT id, name, role, created_at FROM _staff_0008")
    op.drop_table('_staff_0008')


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(people=True)
        return
    op.add_column('staff', sa.Column('handle', sa.String(length=254), nullable=True))
    op.add_column('staff', sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE staff SET handle = lower(id) WHERE handle IS NULL"))
    op.alter_column('staff', 'handle', existing_type=sa.String(length=254), nullable=False)
    op.create_unique_constraint(op.f('uq_staff_handle'), 'staff', ['handle'])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(people=False)
        return
    op.drop_constraint(op.f('uq_staff_handle'), 'staff', type_='unique')
    op.drop_column('staff', 'deactivated_at')
    op.drop_column('staff', 'handle')
