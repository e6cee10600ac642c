"""Features: cleaned documents and chunks with a pgvector embedding (HNSW) and a tsvector (GIN).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DIMENSION = 384  # all-MiniLM-L6-v2; a model of another size alters the column (FeatureStore.ensure_dimension)


def upgrade() -> None:
    op.create_table(
        "cleaned_documents",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("author_id", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("language", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("raw_version", sa.Integer, nullable=False),
        sa.Column("source_key", sa.Text, nullable=False),
        sa.Column("chunked_with", sa.Text),  # source_key + chunker fingerprint of the current chunks
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_cleaned_documents_author", "cleaned_documents", ["author_id"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("document_id", sa.Uuid, sa.ForeignKey("cleaned_documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("author_id", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("embedding_model", sa.Text),
        sa.Column("embedded_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.execute(f"ALTER TABLE chunks ADD COLUMN embedding vector({DIMENSION})")
    op.execute(
        "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
        "(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || text)) STORED"
    )
    op.execute("CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)")
    op.create_index("ix_chunks_tsv", "chunks", ["tsv"], postgresql_using="gin")
    op.create_index("ix_chunks_filters", "chunks", ["author_id", "platform", "category", "published_at"])
    op.create_index("ix_chunks_document", "chunks", ["document_id"])


def downgrade() -> None:
    op.drop_table("chunks")
    op.drop_table("cleaned_documents")
