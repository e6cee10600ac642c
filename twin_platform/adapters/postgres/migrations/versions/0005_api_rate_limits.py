"""RAG API: rate-limit buckets shared by every API worker process.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # UNLOGGED: buckets are refilled state, not records; losing them in a crash only resets the limits,
    # and skipping the WAL keeps the one write per request cheap.
    op.create_table(
        "api_rate_limits",
        sa.Column("bucket", sa.Text, primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("api_rate_limits")
