"""Document warehouse backends: Postgres JSONB (default) and MongoDB."""
