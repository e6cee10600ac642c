"""Alembic environment: runs on the connection handed in by ``twin_platform.adapters.postgres.database``."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
