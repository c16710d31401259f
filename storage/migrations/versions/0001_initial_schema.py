"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27
"""

from alembic import op
import sqlalchemy as sa


import bot.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inboundevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(), nullable=False),
    sa.Column('event_key', sa.String(), nullable=False),
    sa.Column('received_at', bot.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'event_key', name='uq_inbound_event')
    )
    op.create_table('incident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('summary', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('severity', sa.String(), nullable=False),
    sa.Column('priority', sa.String(), nullable=False),
    sa.Column('status', sa.Enum('triggered', 'acknowledged', 'investigating', 'identified', 'monitoring', 'resolved', 'closed', name='status', native_enum=False, length=24), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('custom_fields', sa.JSON(), nullable=False),
    sa.Column('declared_by', sa.String(), nullable=False),
    sa.Column('declared_on', sa.String(), nullable=False),
    sa.Column('declared_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('mitigated_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('resolved_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('closed_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('last_update_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', bot.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_number'), ['number'], unique=True)

    counter = op.create_table('incidentcounter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # The one row incident numbers are taken from (see bot.models.IncidentCounter).
    op.bulk_insert(counter, [{'id': 1, 'value': 0}])
    op.create_table('actionitem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('text', sa.String(), nullable=False),
    sa.Column('assignee', sa.String(), nullable=True),
    sa.Column('due_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('status', sa.Enum('open', 'done', 'cancelled', name='actionstatus', native_enum=False, length=24), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('completed_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'number', name='uq_action_number')
    )
    with op.batch_alter_table('actionitem', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actionitem_incident_id'), ['incident_id'], unique=False)

    op.create_table('channellink',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(), nullable=False),
    sa.Column('workspace', sa.String(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'open', 'archived', name='linkstate', native_enum=False, length=24), nullable=False),
    sa.Column('channel_id', sa.String(), nullable=True),
    sa.Column('channel_name', sa.String(), nullable=True),
    sa.Column('thread_id', sa.String(), nullable=True),
    sa.Column('summary_message_id', sa.String(), nullable=True),
    sa.Column('summary_pinned', sa.Boolean(), nullable=False),
    sa.Column('topic', sa.String(), nullable=True),
    sa.Column('invite', sa.JSON(), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'channel_id', name='uq_link_channel')
    )
    with op.batch_alter_table('channellink', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channellink_incident_id'), ['incident_id'], unique=False)

    op.create_table('timelineentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('message', 'key_event', 'status_change', 'field_change', 'role_change', 'action_item', 'status_update', 'runbook', 'alert', 'reminder', 'system', name='entrykind', native_enum=False, length=24), nullable=False),
    sa.Column('text', sa.String(), nullable=False),
    sa.Column('author_id', sa.String(), nullable=False),
    sa.Column('author_name', sa.String(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('external_id', sa.String(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('occurred_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('edited_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'external_id', name='uq_entry_external')
    )
    with op.batch_alter_table('timelineentry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timelineentry_incident_id'), ['incident_id'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('open_channel', 'post_entry', 'refresh_summary', 'announce', name='deliveryaction', native_enum=False, length=24), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('pending', 'sent', 'skipped', name='deliverystate', native_enum=False, length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('last_error', sa.String(), nullable=True),
    sa.Column('message_id', sa.String(), nullable=True),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('sent_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['timelineentry.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.ForeignKeyConstraint(['link_id'], ['channellink.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_link_id'), ['link_id'], unique=False)
        batch_op.create_index('ix_delivery_pending', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_pending')
        batch_op.drop_index(batch_op.f('ix_delivery_link_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_incident_id'))

    op.drop_table('delivery')
    with op.batch_alter_table('timelineentry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timelineentry_incident_id'))

    op.drop_table('timelineentry')
    with op.batch_alter_table('channellink', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channellink_incident_id'))

    op.drop_table('channellink')
    with op.batch_alter_table('actionitem', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actionitem_incident_id'))

    op.drop_table('actionitem')
    op.drop_table('incidentcounter')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_number'))

    op.drop_table('incident')
    op.drop_table('inboundevent')
