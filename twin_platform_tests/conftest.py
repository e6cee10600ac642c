"""Shared fixtures: one real embedded Postgres per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from twin_platform.adapters.postgres.database import make_engine, upgrade  # noqa: E402
from twin_platform.adapters.postgres.embedded import EmbeddedPostgres  # noqa: E402
from twin_platform.adapters.runtime import Runtime, open_runtime  # noqa: E402
from twin_platform.settings import Settings  # noqa: E402

pytest_plugins = ["twin_platform_tests.api_fixtures"]

TEMPLATE = "twin_template"
HANDBOOK_EXPORT = Path(__file__).resolve().parents[2] / "shared/corpora/llm-engineers-handbook/data_warehouse_raw_data"
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded Postgres for the whole session; returns its socket dir. Stopped at the end."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata")
    server.start()
    socket_dir = server.status().socket_dir
    assert socket_dir is not None
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    engine = make_engine(f"postgresql+psycopg://postgres@/{TEMPLATE}?host={socket_dir}")
    upgrade(engine)
    engine.dispose()
    yield socket_dir
    server.stop()


def create_database(socket_dir: Path, template: str | None = TEMPLATE) -> str:
    name = f"test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template or "template1")
        )
        conn.execute(query)
    return name


def drop_database(socket_dir: Path, name: str) -> None:
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(postgres_server: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = create_database(postgres_server)
    yield f"postgresql+psycopg://postgres@/{name}?host={postgres_server}"
    drop_database(postgres_server, name)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's .env, TWIN_* variables or Dagster instance."""
    for key in list(os.environ):
        if key.startswith("TWIN_") and not key.startswith("TWIN_TEST_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    return work


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TWIN_DATABASE_URL", database_url)
    return Settings()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    with open_runtime(settings) as opened:
        yield opened


@pytest.fixture
def handbook_export() -> Path:
    if not HANDBOOK_EXPORT.is_dir():
        pytest.skip(f"the handbook export is not at {HANDBOOK_EXPORT} (it comes with ../shared)")
    return HANDBOOK_EXPORT


# --- crawling: a real HTTP server on 127.0.0.1 and a fetcher allowed to reach it -------------------------


@pytest.fixture
def site():
    from twin_platform_tests.web.server import Site, serve

    with serve(Site()) as running:
        yield running


@pytest.fixture
def fast_policy():
    from twin_platform.adapters.http.fetcher import FetchPolicy

    return FetchPolicy(
        connect_timeout=2.0,
        read_timeout=0.5,
        max_retries=2,
        backoff_base=0.01,
        min_interval_per_host=0.0,
        max_response_bytes=1_000_000,
    )


@pytest.fixture
def fetcher(fast_policy):
    from twin_platform.adapters.http.fetcher import PoliteFetcher
    from twin_platform.adapters.http.safety import UrlGuard

    with PoliteFetcher(UrlGuard.from_setting("127.0.0.1"), fast_policy) as polite:
        yield polite


@pytest.fixture
def crawl_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings that let the platform's own runtime crawl the fixture site quickly."""
    for key, value in {
        "TWIN_CRAWL_ALLOWED_HOSTS": "127.0.0.1",
        "TWIN_CRAWL_MIN_INTERVAL_SECONDS": "0",
        "TWIN_CRAWL_BACKOFF_SECONDS": "0.01",
        "TWIN_CRAWL_READ_TIMEOUT": "0.5",
        "TWIN_CRAWL_MAX_RETRIES": "2",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once per test session (about 10 s)."""
    from twin_platform.adapters.embedding import load_embedder

    return load_embedder()
