"""delivery message index, timeline root message id

A 📌 on one of the bot's posts looks up the delivery that posted it by (link, message id); the
timeline thread's root message id is kept so a 📌 on it can be ignored on every platform.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channellink', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timeline_message_id', sa.String(), nullable=True))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_message', ['link_id', 'message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_message')
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): batch mode would copy the table and
    # drop the old one, which the foreign keys of incidents' deliveries forbid.
    op.drop_column('channellink', 'timeline_message_id')
