"""``twin db``: the platform's Postgres (embedded unless TWIN_DATABASE_URL is set)."""

from __future__ import annotations

import typer
from sqlalchemy import make_url

from twin_platform.adapters.postgres.database import (
    DatabaseError,
    current_revision,
    database_url,
    downgrade,
    libpq_url,
    make_engine,
    redact,
    upgrade,
)
from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.console import err, fail, literal, out, print_json
from twin_platform.cli.lifecycle import keep_embedded_server
from twin_platform.settings import Settings

app = typer.Typer(help="Start, stop and migrate the platform's Postgres.", no_args_is_help=True)


def _embedded(settings: Settings) -> EmbeddedPostgres | None:
    return None if settings.database_url is not None else EmbeddedPostgres(settings.pgdata_dir)


@app.command()
def start() -> None:
    """Start the embedded Postgres (or check the external one) and apply migrations; it stays up until
    `twin db stop`."""
    keep_embedded_server()
    settings = Settings()
    try:
        engine = make_engine(database_url(settings))
        upgrade(engine)
        revision = current_revision(engine)
        engine.dispose()
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    where = "external server" if settings.database_url is not None else f"embedded, {settings.pgdata_dir}"
    out.print(literal(f"Postgres is up ({where}), schema at revision {revision}"))


@app.command()
def stop() -> None:
    """Stop the embedded Postgres."""
    embedded = _embedded(Settings())
    if embedded is None:
        raise fail("TWIN_DATABASE_URL points at an external server; the platform does not stop it", 1)
    out.print("stopped" if embedded.stop() else "not running")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Whether the database is running, and where; the data dir and where that came from. Exit 1: not running."""
    settings = Settings()
    embedded = _embedded(settings)
    data_dir, source = settings.data_location
    info: dict[str, object] = {"data_dir": str(data_dir), "data_dir_source": source}
    if embedded is None:
        info |= {"mode": "external", "url": redact(settings.database_url.get_secret_value())}  # type: ignore[union-attr]
    else:
        state = embedded.status()
        info |= {
            "mode": "embedded",
            "running": state.running,
            "pid": state.pid,
            "pgdata": str(state.pgdata),
            "socket_dir": str(state.socket_dir) if state.socket_dir else None,
        }
    if as_json:
        print_json(info)
    else:
        for key, value in info.items():
            out.print(literal(f"{key}: {value}"))
    if info.get("running") is False:
        raise typer.Exit(1)


@app.command()
def url(
    sqlalchemy: bool = typer.Option(
        False, "--sqlalchemy", help="SQLAlchemy's form (postgresql+psycopg://...), as TWIN_DATABASE_URL takes it."
    ),
    show_password: bool = typer.Option(False, "--show-password", help="Include the password (external servers)."),
) -> None:
    """Print the database URL for psql (`psql "$(twin db url)"`), starting the embedded server if needed; it
    stays up until `twin db stop`. Without --show-password a password is left out (psql asks for it; with
    --sqlalchemy it is masked)."""
    keep_embedded_server()
    settings = Settings()
    embedded = _embedded(settings)
    was_running = embedded is not None and embedded.status().running
    try:
        url = database_url(settings)
    except DatabaseError as exc:
        raise fail(str(exc)) from None
    if sqlalchemy:
        typer.echo(url if show_password else redact(url))
    else:
        port = embedded.status().port if embedded is not None else None
        typer.echo(libpq_url(url, port=port, with_password=show_password))
        if make_url(url).password and not show_password:
            err.print("the password is left out (psql asks for it, or reads PGPASSWORD); --show-password includes it")
    if embedded is not None and not was_running:
        err.print(literal("started the embedded Postgres (data dir ", settings.data_path, "); `twin db stop` stops it"))


@app.command("upgrade")
def upgrade_command(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply schema migrations."""
    try:
        engine = make_engine(database_url(Settings()))
        upgrade(engine, revision)
        out.print(f"schema at revision {current_revision(engine)}")
        engine.dispose()
    except DatabaseError as exc:
        raise fail(str(exc)) from None


@app.command("downgrade")
def downgrade_command(revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base.")) -> None:
    """Revert schema migrations (drops data of the reverted tables)."""
    engine = make_engine(database_url(Settings()))
    downgrade(engine, revision)
    out.print(f"schema at revision {current_revision(engine)}")
    engine.dispose()
