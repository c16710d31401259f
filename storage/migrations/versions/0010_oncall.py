"""on-call: chat accounts with learned names (person), schedule overrides, escalations

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


import bot.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(), nullable=False),
    sa.Column('user_id', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('seen_at', bot.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'user_id', name='uq_person_account')
    )
    op.create_table('oncalloverride',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule', sa.String(), nullable=False),
    sa.Column('person', sa.String(), nullable=False),
    sa.Column('start_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('end_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('oncalloverride', schema=None) as batch_op:
        batch_op.create_index('ix_override_schedule_end', ['schedule', 'end_at'], unique=False)
    op.create_table('escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('policy', sa.String(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('paged', sa.JSON(), nullable=False),
    sa.Column('message', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('started_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', bot.models.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.create_index('ix_escalation_incident_state', ['incident_id', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_incident_state')
    op.drop_table('escalation')
    with op.batch_alter_table('oncalloverride', schema=None) as batch_op:
        batch_op.drop_index('ix_override_schedule_end')
    op.drop_table('oncalloverride')
    op.drop_table('person')
