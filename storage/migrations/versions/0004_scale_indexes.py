"""indexes that keep lookups flat as the record grows (issue: 100k incidents, 10M entries)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table('channellink', schema=None) as batch_op:
        batch_op.create_index('ix_link_thread', ['platform', 'thread_id'], unique=False)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_pending')
        batch_op.create_index('ix_delivery_queue_pending', ['link_id', 'id'], unique=False,
                              postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index(batch_op.f('ix_delivery_entry_id'), ['entry_id'], unique=False)
    with op.batch_alter_table('timelineentry', schema=None) as batch_op:
        batch_op.create_index('ix_entry_incident_time', ['incident_id', 'occurred_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_entry_incident_kind_time', ['incident_id', 'kind', 'occurred_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('timelineentry', schema=None) as batch_op:
        batch_op.drop_index('ix_entry_incident_kind_time')
        batch_op.drop_index('ix_entry_incident_time')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_entry_id'))
        batch_op.drop_index('ix_delivery_queue_pending', postgresql_where=PENDING,
                            sqlite_where=PENDING)
        batch_op.create_index('ix_delivery_pending', ['state', 'next_attempt_at'], unique=False)
    with op.batch_alter_table('channellink', schema=None) as batch_op:
        batch_op.drop_index('ix_link_thread')
