"""notice: the outbox for messages outside incident channels (see bot.models.Notice)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


import bot.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _state(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=24)


def upgrade() -> None:
    op.create_table('notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('kind', _state('noticekind', 'post', 'dm', 'update', 'webhook'), nullable=False),
    sa.Column('platform', sa.String(), nullable=False),
    sa.Column('workspace', sa.String(), nullable=False),
    sa.Column('target', sa.String(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('ref_key', sa.String(), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('state', _state('deliverystate', 'pending', 'sent', 'skipped', 'failed'),
              nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('last_error', sa.String(), nullable=True),
    sa.Column('channel_id', sa.String(), nullable=True),
    sa.Column('message_id', sa.String(), nullable=True),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('sent_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key'),
    )
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.create_index('ix_notice_incident_id', ['incident_id'], unique=False)
        batch_op.create_index('ix_notice_queue_pending', ['platform', 'target', 'id'],
                              unique=False, postgresql_where=sa.text("state = 'pending'"),
                              sqlite_where=sa.text("state = 'pending'"))


def downgrade() -> None:
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_queue_pending')
        batch_op.drop_index('ix_notice_incident_id')
    op.drop_table('notice')
