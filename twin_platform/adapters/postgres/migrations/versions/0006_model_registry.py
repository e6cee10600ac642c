"""The model registry: trained twins and their release history (replaces models/registry.json).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("author_id", sa.Text, sa.ForeignKey("authors.id"), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("lineage", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("metrics", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("evaluation", postgresql.JSONB),
        sa.Column("released_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("state", sa.Text, nullable=False, server_default="candidate"),
        sa.CheckConstraint("state IN ('candidate', 'released', 'refused', 'retired')", name="ck_models_state"),
        sa.CheckConstraint("state <> 'released' OR released_at IS NOT NULL", name="ck_models_released_at"),
    )
    # At most one released model per author: the database keeps the invariant even if code races.
    op.create_index(
        "ux_models_released_per_author",
        "models",
        ["author_id"],
        unique=True,
        postgresql_where=sa.text("state = 'released'"),
    )
    op.create_index("ix_models_author_created", "models", ["author_id", "created_at"])
    op.create_table(
        "model_releases",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("version", sa.Text, sa.ForeignKey("models.version"), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("gates", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint(
            "action IN ('register', 'release', 'force-release', 'refuse', 'rollback', 'retire')",
            name="ck_model_releases_action",
        ),
    )
    op.create_index("ix_model_releases_version", "model_releases", ["version", "id"])


def downgrade() -> None:
    op.drop_table("model_releases")
    op.drop_table("models")
