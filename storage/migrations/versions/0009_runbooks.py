"""runbooks: runs of catalog runbooks with their per-step state

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


import bot.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runbookrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('runbook', sa.String(), nullable=False),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('step_states', sa.JSON(), nullable=False),
    sa.Column('current', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('running', 'waiting', 'failed', 'done', 'cancelled', name='runstate', native_enum=False, length=24), nullable=False),
    sa.Column('started_by', sa.String(), nullable=False),
    sa.Column('trigger', sa.String(), nullable=False),
    sa.Column('progress_entry_id', sa.Integer(), nullable=True),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', bot.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.ForeignKeyConstraint(['progress_entry_id'], ['timelineentry.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'number', name='uq_run_number')
    )
    with op.batch_alter_table('runbookrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runbookrun_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runbookrun_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('runbookrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runbookrun_state'))
        batch_op.drop_index(batch_op.f('ix_runbookrun_incident_id'))
    op.drop_table('runbookrun')
