"""alert triage: the decision on a triage-mode alert (see bot.triage)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triage', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('triage_of', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('triage_by', sa.String(), nullable=True))
        batch_op.create_index('ix_alert_triage_of', ['triage_of'], unique=False)
        batch_op.create_index('ix_alert_triage_pending', ['id'], unique=False,
                              postgresql_where=sa.text("triage = 'pending'"),
                              sqlite_where=sa.text("triage = 'pending'"))


def downgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_triage_pending')
        batch_op.drop_index('ix_alert_triage_of')
        batch_op.drop_column('triage_by')
        batch_op.drop_column('triage_of')
        batch_op.drop_column('triage')
