"""Connecting to the platform's Postgres: embedded by default, external with ``TWIN_DATABASE_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.engine import Connection

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseError(RuntimeError):
    """The database cannot be used by the platform; the message says why and what to do."""


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise DatabaseError(f"TWIN_DATABASE_URL must be a PostgreSQL URL, got a {parsed.drivername!r} URL")
    return parsed.render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def libpq_url(url: str, *, port: int | None = None, with_password: bool = False) -> str:
    """``url`` (a SQLAlchemy URL) as a libpq connection URI that ``psql`` and ``psycopg.connect`` accept.

    No ``+driver``; a unix socket folder goes into the ``host`` query parameter (with ``port`` when known),
    every part percent-encoded as libpq decodes it. The password is left out unless ``with_password``:
    psql then asks for it, or reads ``PGPASSWORD`` / ``~/.pgpass``.
    """
    parsed = make_url(url)
    query: list[tuple[str, str]] = []
    for key, value in parsed.query.items():
        query += [(key, v) for v in ((value,) if isinstance(value, str) else value)]
    host = parsed.host or ""
    port = parsed.port or port
    if host.startswith("/"):  # a socket folder is not a host name: it goes into the query
        query.insert(0, ("host", host))
        host = ""
    if not host and port and not any(key == "port" for key, _ in query):
        query.append(("port", str(port)))
    netloc = quote(parsed.username or "", safe="")
    if with_password and parsed.password:
        netloc += ":" + quote(str(parsed.password), safe="")
    if netloc:
        netloc += "@"
    if host:
        netloc += f"[{host}]" if ":" in host else quote(host, safe="")
        if port:
            netloc += f":{port}"
    search = "&".join(f"{quote(key, safe='')}={quote(value, safe='/')}" for key, value in query)
    database = quote(parsed.database or "", safe="")
    return f"postgresql://{netloc}/{database}" + (f"?{search}" if search else "")


def database_url(settings: Settings) -> str:
    """The configured database URL, starting the embedded server when none is configured."""
    if settings.database_url is not None:
        return normalize_url(settings.database_url.get_secret_value())
    return EmbeddedPostgres(settings.pgdata_dir).start()


def make_engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 10, "application_name": "twin_platform"},
    )


def check_vector_extension(conn: Connection, url: str, extension: str = "vector") -> None:
    """Refuse a server without pgvector, with a message that says what to do."""
    available = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = :name"), {"name": extension}
    ).scalar()
    if not available:
        raise DatabaseError(
            f"the Postgres server at {redact(url)} has no {extension!r} extension (pgvector). "
            "Install pgvector on that server, or unset TWIN_DATABASE_URL to use the embedded "
            "Postgres that ships with it."
        )


def alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply schema migrations up to ``revision`` (checks for pgvector first)."""
    with engine.begin() as conn:
        check_vector_extension(conn, engine.url.render_as_string(hide_password=False))
        # One migrator at a time: Dagster runs, the CLI and tests may start together.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('twin_platform.migrations'))"))
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('twin_platform.migrations'))"))
        command.downgrade(alembic_config(conn), revision)


def head_revision() -> str:
    """The newest migration shipped with this code."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """An engine on the configured database with the schema at the newest migration."""
    engine = make_engine(database_url(settings))
    if migrate:
        upgrade(engine)
    return engine
