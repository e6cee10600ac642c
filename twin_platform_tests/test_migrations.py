import warnings
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from twin_platform.adapters.postgres.database import (
    DatabaseError,
    check_vector_extension,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    normalize_url,
    redact,
    upgrade,
)
from twin_platform.adapters.postgres.tables import metadata
from twin_platform_tests.conftest import create_database, drop_database


@pytest.fixture
def empty_database(postgres_server: Path):
    name = create_database(postgres_server, template=None)
    engine = make_engine(f"postgresql+psycopg://postgres@/{name}?host={postgres_server}")
    yield engine
    engine.dispose()
    drop_database(postgres_server, name)


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


TABLES_BY_REVISION = {
    "0001": {"authors", "raw_documents"},
    "0002": {"crawl_validators"},
    "0003": {"cleaned_documents", "chunks"},
    "0004": {"api_keys", "query_log"},
    "0005": {"api_rate_limits"},
    "0006": {"models", "model_releases"},
    "0007": set(),  # columns: models.release_uri, query_log.model_version
}


def test_migrations_go_up_down_and_up_again(empty_database: sa.Engine):
    assert head_revision() == max(TABLES_BY_REVISION)
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision()
    assert set().union(*TABLES_BY_REVISION.values()) | {"alembic_version"} == tables(empty_database)
    with empty_database.connect() as conn:
        assert conn.execute(sa.text("SELECT extname FROM pg_extension WHERE extname = 'vector'")).scalar() == "vector"

    # Step down one revision at a time: each removes exactly what it added.
    revisions = sorted(TABLES_BY_REVISION, reverse=True)
    for revision, previous in zip(revisions, [*revisions[1:], "base"], strict=True):
        downgrade(empty_database, previous)
        assert current_revision(empty_database) == (None if previous == "base" else previous)
        assert not TABLES_BY_REVISION[revision] & tables(empty_database)
        if revision == "0007":
            inspector = sa.inspect(empty_database)
            assert "release_uri" not in {c["name"] for c in inspector.get_columns("models")}
            assert "model_version" not in {c["name"] for c in inspector.get_columns("query_log")}
        if revision == "0002":
            assert "respect_robots_txt" not in {c["name"] for c in sa.inspect(empty_database).get_columns("authors")}
    assert tables(empty_database) == {"alembic_version"}

    upgrade(empty_database)
    upgrade(empty_database)  # applying twice is a no-op
    assert current_revision(empty_database) == head_revision()


def index_methods_in_code() -> dict[str, tuple[str, dict[str, str]]]:
    """Access method and non-default operator classes of every index tables.py declares."""
    methods = {}
    for table in metadata.tables.values():
        for index in table.indexes:
            options = index.dialect_options["postgresql"]
            methods[str(index.name)] = (options["using"] or "btree", dict(options["ops"] or {}))
    return methods


def index_methods_in_database(inspector: sa.Inspector) -> dict[str, tuple[str, dict[str, str]]]:
    """The same for the database's indexes (those backing primary keys and unique constraints aside)."""
    methods = {}
    for table in metadata.tables:
        for index in inspector.get_indexes(table):
            if "duplicates_constraint" not in index:
                options = index.get("dialect_options", {})
                methods[str(index["name"])] = (
                    options.get("postgresql_using", "btree"),
                    dict(options.get("postgresql_ops", {})),
                )
    return methods


def test_tables_py_declares_exactly_what_the_migrations_create(empty_database: sa.Engine):
    upgrade(empty_database)
    with empty_database.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            differences = compare_metadata(context, metadata)
        inspector = sa.inspect(conn)
        in_database = index_methods_in_database(inspector)
        checks_in_database = {(t, c["name"]) for t in metadata.tables for c in inspector.get_check_constraints(t)}

    # Columns, types (a Vector without a dimension matches any: the dimension follows the configured model),
    # nullability, server defaults, primary and foreign keys, unique constraints, index columns.
    assert differences == []
    # Alembic only warns, without a difference, when a generated column's expression (chunks.tsv) differs
    # or when it cannot reflect something; either is a disagreement.
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
    # What autogenerate does not compare: index access methods and operator classes (HNSW with cosine
    # distance, GIN) and CHECK constraints (by name: Postgres rewrites their expressions).
    assert index_methods_in_code() == in_database
    assert in_database["ix_chunks_embedding_hnsw"] == ("hnsw", {"embedding": "vector_cosine_ops"})
    checks_in_code = {
        (t.name, c.name) for t in metadata.tables.values() for c in t.constraints if isinstance(c, sa.CheckConstraint)
    }
    assert checks_in_code == checks_in_database


def test_a_server_without_the_extension_is_refused_with_a_clear_message(empty_database: sa.Engine):
    url = empty_database.url.render_as_string(hide_password=False)
    with empty_database.connect() as conn:
        check_vector_extension(conn, url)  # the embedded server has pgvector
        with pytest.raises(DatabaseError, match=r"no 'not_installed_ext' extension .* unset TWIN_DATABASE_URL"):
            check_vector_extension(conn, url, extension="not_installed_ext")


def test_urls_are_normalised_and_passwords_never_shown():
    assert normalize_url("postgres://u:pw@db:5432/twin").startswith("postgresql+psycopg://u:pw@db")
    assert "pw" not in redact("postgresql+psycopg://u:pw@db/twin")
    with pytest.raises(DatabaseError, match="must be a PostgreSQL URL"):
        normalize_url("mysql://u@db/twin")


def test_embedded_server_answers_on_its_socket(postgres_server: Path):
    with psycopg.connect(host=str(postgres_server), user="postgres", dbname="postgres") as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert version is not None
    assert version[0] >= 180000
