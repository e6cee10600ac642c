"""RAG API: hashed API keys and the query log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.CHAR(64), nullable=False, unique=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
        sa.Column("last_used_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("revoked_at", sa.TIMESTAMP(timezone=True)),
    )
    op.create_table(
        "query_log",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("api_key_name", sa.Text),
        sa.Column("author_id", sa.Text),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("filters", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("retrieved", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("timings_ms", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("prompt_version", sa.Text),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("flags", postgresql.JSONB, nullable=False, server_default="[]"),
    )
    op.create_index("ix_query_log_created_at", "query_log", ["created_at"])


def downgrade() -> None:
    op.drop_table("query_log")
    op.drop_table("api_keys")
