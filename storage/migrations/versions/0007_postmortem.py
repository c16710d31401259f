"""postmortem: impact_started_at on incidents, postmortem versions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


import bot.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTERs, not a batch: on SQLite a batch copies the table, and dropping `incident`
    # is refused while other tables point at it.
    op.add_column('incident', sa.Column('impact_started_at', bot.models.UTCDateTime(), nullable=True))
    op.create_index('ix_incident_declared_at', 'incident', ['declared_at'], unique=False)
    # Incidents declared before this column existed: their impact is known to start at the declare.
    op.execute('UPDATE incident SET impact_started_at = declared_at WHERE impact_started_at IS NULL')
    op.create_table('postmortem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('markdown', sa.String(), nullable=False),
    sa.Column('draft', sa.Boolean(), nullable=False),
    sa.Column('model', sa.String(), nullable=False),
    sa.Column('removed_citations', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'version', name='uq_postmortem_version')
    )
    with op.batch_alter_table('postmortem', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postmortem_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('postmortem', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postmortem_incident_id'))
    op.drop_table('postmortem')
    op.drop_index('ix_incident_declared_at', table_name='incident')
    op.execute('ALTER TABLE incident DROP COLUMN impact_started_at')  # SQLite 3.35+ too
