"""Wires the adapters together from settings: the one place that decides which backend is used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from twin_platform.adapters.embedding import SentenceEmbedder, load_embedder
from twin_platform.adapters.git import shallow_clone
from twin_platform.adapters.http.fetcher import FetchPolicy, PoliteFetcher
from twin_platform.adapters.http.safety import UrlGuard
from twin_platform.adapters.postgres.authors import PostgresAuthorRegistry
from twin_platform.adapters.postgres.database import open_database
from twin_platform.adapters.postgres.features import PostgresFeatureStore
from twin_platform.adapters.postgres.model_registry import ModelRegistry
from twin_platform.adapters.postgres.search import PostgresSearchIndex
from twin_platform.adapters.postgres.validators import PostgresValidatorStore
from twin_platform.adapters.warehouse.mongo import MongoWarehouse
from twin_platform.adapters.warehouse.postgres import PostgresWarehouse
from twin_platform.collection.crawlers.dispatch import CrawlEnvironment
from twin_platform.collection.crawlers.github import RepositoryLimits
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
    crawl: CrawlEnvironment
    features: PostgresFeatureStore
    search: PostgresSearchIndex
    models: ModelRegistry

    def embedder(self) -> SentenceEmbedder:
        """The configured embedding model and batch size, loaded on first use (once per process)."""
        return load_embedder(self.settings.embedding_model, batch_size=self.settings.embedding_batch_size)


def crawl_environment(settings: Settings, engine: Engine) -> tuple[CrawlEnvironment, PoliteFetcher]:
    guard = UrlGuard.from_setting(settings.crawl_allowed_hosts)
    fetcher = PoliteFetcher(
        guard,
        FetchPolicy(
            user_agent=settings.crawl_user_agent,
            connect_timeout=settings.crawl_connect_timeout,
            read_timeout=settings.crawl_read_timeout,
            max_retries=settings.crawl_max_retries,
            backoff_base=settings.crawl_backoff_seconds,
            min_interval_per_host=settings.crawl_min_interval_seconds,
            max_concurrency=settings.crawl_max_concurrency,
            max_response_bytes=settings.crawl_max_response_bytes,
        ),
    )
    timeout = settings.git_clone_timeout
    environment = CrawlEnvironment(
        fetcher=fetcher,
        validators=PostgresValidatorStore(engine),
        clone=lambda url, dest: shallow_clone(url, dest, guard=guard, timeout=timeout),
        repository_limits=RepositoryLimits(settings.github_max_file_bytes, settings.github_max_repo_bytes),
        max_workers=settings.crawl_max_concurrency,
    )
    return environment, fetcher


def mongo_client(url: str) -> Any:
    from pymongo import MongoClient

    return MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000, connectTimeoutMS=10_000, retryWrites=True)


@contextmanager
def open_runtime(settings: Settings | None = None) -> Iterator[Runtime]:
    """Connect to Postgres (starting the embedded server if needed, migrating the schema) and the warehouse.

    A model registry file of earlier versions (``$TWIN_DATA_DIR/models/registry.json``) is imported into
    Postgres here, once, whoever opens the runtime first (CLI, Dagster run, API)."""
    settings = settings or Settings()
    engine = open_database(settings)
    model_registry = ModelRegistry(engine)
    client = None
    crawl, fetcher = crawl_environment(settings, engine)
    try:
        legacy = settings.data_path / "models" / "registry.json"
        if legacy.exists():
            model_registry.import_json(legacy)
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
            crawl=crawl,
            features=PostgresFeatureStore(engine),
            search=PostgresSearchIndex(engine),
            models=model_registry,
        )
    finally:
        fetcher.close()
        if client is not None:
            client.close()
        engine.dispose()
