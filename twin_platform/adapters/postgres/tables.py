"""The schema as the migrations create it, declared once for the queries (SQLAlchemy Core).

Migrations own the deployed schema; this module must describe exactly what they produce: columns,
types, nullability, server defaults, keys, indexes, CHECK constraints and the sequence.
``twin_platform_tests/test_migrations.py`` upgrades a fresh database and fails on any difference, so
a migration that changes the schema changes this module in the same commit.
"""

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

NOW = sa.text("now()")

authors = sa.Table(
    "authors",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("full_name", sa.Text, nullable=False, unique=True),
    sa.Column("aliases", postgresql.JSONB, nullable=False, server_default="[]"),
    sa.Column("links", postgresql.JSONB, nullable=False, server_default="{}"),
    sa.Column("imports", postgresql.JSONB, nullable=False, server_default="[]"),
    sa.Column("respect_robots_txt", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
)

revision_seq = sa.Sequence("raw_documents_revision_seq", metadata=metadata)

raw_documents = sa.Table(
    "raw_documents",
    metadata,
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
        "revision", sa.BigInteger, nullable=False, server_default=sa.text("nextval('raw_documents_revision_seq')")
    ),
    sa.UniqueConstraint("author_id", "source_url", name="uq_raw_documents_author_source"),
    sa.CheckConstraint("category IN ('article', 'post', 'repository')", name="ck_raw_documents_category"),
    sa.CheckConstraint("version >= 1", name="ck_raw_documents_version"),
    sa.Index("ix_raw_documents_revision", "revision"),
    sa.Index("ix_raw_documents_filters", "author_id", "platform", "category"),
    sa.Index("ix_raw_documents_updated_at", "updated_at"),
)

crawl_validators = sa.Table(
    "crawl_validators",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
)

cleaned_documents = sa.Table(
    "cleaned_documents",
    metadata,
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
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    sa.Index("ix_cleaned_documents_author", "author_id"),
)

chunks = sa.Table(
    "chunks",
    metadata,
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
    sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    # No dimension here: migration 0003 creates vector(384) and FeatureStore.ensure_dimension alters it
    # to the configured model's size, so the dimension is the database's, not the code's.
    sa.Column("embedding", Vector()),
    sa.Column(
        "tsv",
        postgresql.TSVECTOR,
        sa.Computed("to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || text)", persisted=True),
    ),
    sa.Index(
        "ix_chunks_embedding_hnsw",
        "embedding",
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    ),
    sa.Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
    sa.Index("ix_chunks_filters", "author_id", "platform", "category", "published_at"),
    sa.Index("ix_chunks_document", "document_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("key_hash", sa.CHAR(64), nullable=False, unique=True),
    sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_used_at", sa.TIMESTAMP(timezone=True)),
    sa.Column("revoked_at", sa.TIMESTAMP(timezone=True)),
)

query_log = sa.Table(
    "query_log",
    metadata,
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
    # The registry version of the model that answered (migration 0007); null for search-only requests.
    sa.Column("model_version", sa.Text),
    sa.Index("ix_query_log_created_at", "created_at"),
)

# Token buckets of the API's per-key rate limits, shared by its worker processes (UNLOGGED: migration 0005).
api_rate_limits = sa.Table(
    "api_rate_limits",
    metadata,
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False),
    prefixes=["UNLOGGED"],
)

# The model registry (migration 0006): one row per trained twin, keyed by its artifact's content version.
models = sa.Table(
    "models",
    metadata,
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
    # Where the release was published for serving, s3://bucket/releases/author/version/ (migration 0007).
    sa.Column("release_uri", sa.Text),
    sa.CheckConstraint("state IN ('candidate', 'released', 'refused', 'retired')", name="ck_models_state"),
    sa.CheckConstraint("state <> 'released' OR released_at IS NOT NULL", name="ck_models_released_at"),
    # The invariant "the released twin": at most one released model per author.
    sa.Index(
        "ux_models_released_per_author",
        "author_id",
        unique=True,
        postgresql_where=sa.text("state = 'released'"),
    ),
    sa.Index("ix_models_author_created", "author_id", "created_at"),
)

# Every state change of a model, oldest first by id (several rows of one transaction share `at`).
model_releases = sa.Table(
    "model_releases",
    metadata,
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
    sa.Index("ix_model_releases_version", "version", "id"),
)
