"""Wires the adapters together from settings: the one place that decides which backend is used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from twin_platform.adapters.postgres.authors import PostgresAuthorRegistry
from twin_platform.adapters.postgres.database import open_database
from twin_platform.adapters.warehouse.mongo import MongoWarehouse
from twin_platform.adapters.warehouse.postgres import PostgresWarehouse
from twin_platform.domain.ports import AuthorRegistry, DocumentWarehouse
from twin_platform.settings import Settings


@dataclass
class Runtime:
    """Open connections to everything the platform stores."""

    settings: Settings
    engine: Engine
    authors: AuthorRegistry
    warehouse: DocumentWarehouse
    warehouse_backend: str


def mongo_client(url: str) -> Any:
    from pymongo import MongoClient

    return MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000, connectTimeoutMS=10_000, retryWrites=True)


@contextmanager
def open_runtime(settings: Settings | None = None) -> Iterator[Runtime]:
    """Connect to Postgres (starting the embedded server if needed, migrating the schema) and the warehouse."""
    settings = settings or Settings()
    engine = open_database(settings)
    client = None
    try:
        warehouse: DocumentWarehouse
        if settings.mongodb_url is not None:
            client = mongo_client(settings.mongodb_url.get_secret_value())
            warehouse = MongoWarehouse(client[settings.mongodb_database])
            backend = "mongodb"
        else:
            warehouse = PostgresWarehouse(engine)
            backend = "postgres"
        yield Runtime(
            settings=settings,
            engine=engine,
            authors=PostgresAuthorRegistry(engine),
            warehouse=warehouse,
            warehouse_backend=backend,
        )
    finally:
        if client is not None:
            client.close()
        engine.dispose()
