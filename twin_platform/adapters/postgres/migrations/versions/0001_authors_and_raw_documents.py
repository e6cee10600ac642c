"""Authors and the Postgres document warehouse.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "authors",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("full_name", sa.Text, nullable=False, unique=True),
        sa.Column("aliases", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("links", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("imports", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    )
    op.execute("CREATE SEQUENCE raw_documents_revision_seq")
    op.create_table(
        "raw_documents",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("author_id", sa.Text, sa.ForeignKey("authors.id"), nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("language", sa.Text),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("content_hash", sa.CHAR(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("last_seen", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.TIMESTAMP(timezone=True)),
        sa.Column(
            "revision",
            sa.BigInteger,
            nullable=False,
            server_default=sa.text("nextval('raw_documents_revision_seq')"),
        ),
        sa.UniqueConstraint("author_id", "source_url", name="uq_raw_documents_author_source"),
        sa.CheckConstraint("category IN ('article', 'post', 'repository')", name="ck_raw_documents_category"),
        sa.CheckConstraint("version >= 1", name="ck_raw_documents_version"),
    )
    op.create_index("ix_raw_documents_revision", "raw_documents", ["revision"])
    op.create_index("ix_raw_documents_filters", "raw_documents", ["author_id", "platform", "category"])
    op.create_index("ix_raw_documents_updated_at", "raw_documents", ["updated_at"])


def downgrade() -> None:
    op.drop_table("raw_documents")
    op.execute("DROP SEQUENCE raw_documents_revision_seq")
    op.drop_table("authors")
