"""Postgres: embedded server, engine, schema migrations, tables."""
