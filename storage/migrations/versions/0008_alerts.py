"""alerts: every event received from monitoring, stored once

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 08:44:20.032102
"""

from alembic import op
import sqlalchemy as sa

import bot.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("starts_at", bot.models.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("ends_at", bot.models.UTCDateTime(), nullable=True),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("link", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("new_group", sa.Boolean(), nullable=False),
        sa.Column("storm", sa.Boolean(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_received_at", bot.models.UTCDateTime(), nullable=False),
        sa.Column("last_received_at", bot.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "fingerprint", "starts_at", "status", name="uq_alert_event"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_episode", ["source", "fingerprint", "id"], unique=False)
        batch_op.create_index("ix_alert_group", ["group_key", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(
            "ix_alert_route_received", ["route", "first_received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_route_received")
        batch_op.drop_index(batch_op.f("ix_alert_incident_id"))
        batch_op.drop_index("ix_alert_group")
        batch_op.drop_index("ix_alert_episode")

    op.drop_table("alert")
