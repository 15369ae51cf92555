"""webhooks.secret holds the signing secret sealed with the operator key

The sealed form (``fdenc:v1:<key id>:<base64url(nonce | ciphertext | tag)>``, AES-256-GCM, see
``freezedesk.notify.secretbox``) is longer than the 80 characters the clear secret needed, so the
column becomes TEXT. A migration cannot know the key (``FREEZEDESK_SECRET_KEY``): secrets already
stored in clear, and the stored idempotent responses of ``POST /v1/webhooks`` that carry them, are
sealed when a server starts with the key (``notify.webhooks.seal_stored_secrets``); a server
started without it refuses to start while the database holds any webhook secret.

Downgrade only narrows the column back: sealed values longer than 80 characters must first be
removed (the previous version could not use them anyway).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-16 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=80), type_=sa.Text(),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.Text(), type_=sa.String(length=80),
                              existing_nullable=False)
