"""SQLAlchemy Core views of the tables the migrations create (queries only; the schema lives in migrations)."""

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

authors = sa.Table(
    "authors",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("full_name", sa.Text),
    sa.Column("aliases", postgresql.JSONB),
    sa.Column("links", postgresql.JSONB),
    sa.Column("imports", postgresql.JSONB),
    sa.Column("respect_robots_txt", sa.Boolean),
    sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
)

raw_documents = sa.Table(
    "raw_documents",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("author_id", sa.Text),
    sa.Column("source_url", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("platform", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("content", sa.Text),
    sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("language", sa.Text),
    sa.Column("metadata", postgresql.JSONB),
    sa.Column("content_hash", sa.CHAR(64)),
    sa.Column("version", sa.Integer),
    sa.Column("first_seen", sa.TIMESTAMP(timezone=True)),
    sa.Column("last_seen", sa.TIMESTAMP(timezone=True)),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("deleted_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("revision", sa.BigInteger),
)

crawl_validators = sa.Table(
    "crawl_validators",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
)

revision_seq = sa.Sequence("raw_documents_revision_seq", metadata=metadata)

cleaned_documents = sa.Table(
    "cleaned_documents",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("author_id", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("platform", sa.Text),
    sa.Column("source_url", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("language", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("raw_version", sa.Integer),
    sa.Column("source_key", sa.Text),
    sa.Column("chunked_with", sa.Text),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
)

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("document_id", sa.Uuid),
    sa.Column("author_id", sa.Text),
    sa.Column("platform", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("published_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("source_url", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("chunk_index", sa.Integer),
    sa.Column("text", sa.Text),
    sa.Column("token_count", sa.Integer),
    sa.Column("embedding", Vector()),
    sa.Column("embedding_model", sa.Text),
    sa.Column("embedded_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("prefix", sa.Text),
    sa.Column("key_hash", sa.CHAR(64)),
    sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("last_used_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("revoked_at", sa.TIMESTAMP(timezone=True)),
)

query_log = sa.Table(
    "query_log",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("endpoint", sa.Text),
    sa.Column("api_key_name", sa.Text),
    sa.Column("author_id", sa.Text),
    sa.Column("query", sa.Text),
    sa.Column("filters", postgresql.JSONB),
    sa.Column("retrieved", postgresql.JSONB),
    sa.Column("timings_ms", postgresql.JSONB),
    sa.Column("latency_ms", sa.Float),
    sa.Column("model", sa.Text),
    sa.Column("prompt_version", sa.Text),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("flags", postgresql.JSONB),
)
