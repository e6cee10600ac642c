"""Fixtures for the RAG API tests: the demo author indexed once per session in a template database,
a fresh copy per test, and an app wired to it (loaded as a pytest plugin by conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from pydantic import SecretStr

from twin_platform.adapters.llm.resilience import CircuitBreaker, ResilientLLM
from twin_platform.adapters.llm.tgi import TGIClient
from twin_platform.adapters.runtime import open_runtime
from twin_platform.api.app import create_app
from twin_platform.api.state import ApiState, open_state
from twin_platform.domain.llm import LLMClient
from twin_platform.features.chunking import ChunkingOptions
from twin_platform.features.cleaning import CleaningOptions
from twin_platform.features.pipeline import refresh_chunks, refresh_cleaned, refresh_embeddings
from twin_platform.settings import Settings
from twin_platform_tests.conftest import create_database, drop_database
from twin_platform_tests.web.tgi import FakeTGI, serve_tgi


class Clock:
    """A monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def url_of(socket_dir: Path, name: str) -> str:
    return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}"


def register_demo_without_dagster(settings: Settings) -> None:
    from twin_platform.cli import demo

    original = demo.add_author_partitions
    demo.add_author_partitions = lambda *a, **k: None  # no Dagster instance needed here
    try:
        demo.register_demo(settings)
    finally:
        demo.add_author_partitions = original


@pytest.fixture(scope="session")
def indexed_template(postgres_server: Path, tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[str]:
    """A database with the demo author imported and indexed, cloned for each test."""
    name = create_database(postgres_server)
    settings = Settings(
        database_url=SecretStr(url_of(postgres_server, name)), data_dir=tmp_path_factory.mktemp("api-data")
    )
    with open_runtime(settings) as runtime:
        register_demo_without_dagster(settings)
        refresh_cleaned("mara-ellison", runtime.warehouse, runtime.features, CleaningOptions())
        refresh_chunks(
            "mara-ellison", runtime.features, embedder.count_tokens, ChunkingOptions(max_tokens=embedder.max_tokens)
        )
        refresh_embeddings("mara-ellison", runtime.features, embedder)
    yield name
    drop_database(postgres_server, name)


@pytest.fixture
def tgi() -> Iterator[FakeTGI]:
    with serve_tgi() as server:
        yield server


@pytest.fixture
def api_settings(indexed_template: str, postgres_server: Path, tmp_path: Path) -> Iterator[Settings]:
    name = create_database(postgres_server, template=indexed_template)
    yield Settings(
        database_url=SecretStr(url_of(postgres_server, name)),
        data_dir=tmp_path / "data",
        api_rate_limit_per_minute=1000,
        llm_max_new_tokens=32,
    )
    drop_database(postgres_server, name)


def make_client(
    settings: Settings, llm: LLMClient | None, clock: Clock | None = None
) -> tuple[TestClient, ApiState, dict[str, str]]:
    state = open_state(settings, llm=llm, load_llm=False, **({"clock": clock} if clock else {}))
    key = state.keys.store.create("tests")
    return TestClient(create_app(settings, state=state)), state, {"Authorization": f"Bearer {key}"}


def tgi_llm(tgi: FakeTGI) -> ResilientLLM:
    return ResilientLLM(TGIClient(tgi.url, timeout=5), retries=0, breaker=CircuitBreaker(threshold=2))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(api_settings: Settings, tgi: FakeTGI, clock: Clock) -> Iterator[tuple[TestClient, ApiState, dict[str, str]]]:
    client, state, headers = make_client(api_settings, tgi_llm(tgi), clock)
    with client:
        yield client, state, headers
    state.close()


def log_rows(state: ApiState) -> list[sa.Row]:
    """The query log, oldest first, once everything queued is written."""
    assert state.query_log.flush()
    with state.runtime.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM query_log ORDER BY created_at")))
