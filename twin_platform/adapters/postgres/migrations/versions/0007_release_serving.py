"""Releases reach serving: where a release was published (``models.release_uri``) and which model version
produced each answer (``query_log.model_version``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("models", sa.Column("release_uri", sa.Text))
    op.add_column("query_log", sa.Column("model_version", sa.Text))


def downgrade() -> None:
    op.drop_column("query_log", "model_version")
    op.drop_column("models", "release_uri")
