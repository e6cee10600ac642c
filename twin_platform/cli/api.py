"""``twin api`` and ``twin apikey``: serve the RAG API, manage its keys."""

from __future__ import annotations

import typer
from rich.table import Table

from twin_platform.adapters.postgres.api_store import ApiKeyError, ApiKeyStore
from twin_platform.adapters.postgres.database import open_database
from twin_platform.cli.console import fail, out, print_json
from twin_platform.settings import Settings

keys_app = typer.Typer(help="API keys for the RAG API (stored hashed; shown once).", no_args_is_help=True)


def api_command(
    host: str | None = typer.Option(None, "--host", help="Bind address (default TWIN_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default TWIN_API_PORT, 8000)."),
) -> None:
    """Serve the RAG API with uvicorn (OpenAPI docs at /schema/swagger)."""
    import uvicorn

    from twin_platform.api.app import create_app

    settings = Settings()
    overrides = {k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise fail(str(exc)) from None
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        timeout_keep_alive=5,
        limit_concurrency=256,
        timeout_graceful_shutdown=5,
    )


def create_key(settings: Settings, name: str) -> str:
    engine = open_database(settings)
    try:
        return ApiKeyStore(engine).create(name)
    finally:
        engine.dispose()


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="Who or what the key is for."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a key. It is printed once: only its hash is stored."""
    try:
        key = create_key(Settings(), name)
    except ApiKeyError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print_json({"name": name, "key": key})
    else:
        out.print(f"API key for [bold]{name}[/] (shown once, keep it safe):\n{key}", highlight=False)


@keys_app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Keys by name and prefix, with last use and revocation."""
    engine = open_database(Settings())
    try:
        keys = ApiKeyStore(engine).list()
    finally:
        engine.dispose()
    rows = [
        {
            "name": k.name,
            "prefix": k.prefix,
            "created_at": k.created_at.isoformat(),
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            "revoked": k.revoked_at is not None,
        }
        for k in keys
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "prefix", "created", "last used", "revoked")
    for row in rows:
        table.add_row(*(str(row[c] or "") for c in ("name", "prefix", "created_at", "last_used_at", "revoked")))
    out.print(table)


@keys_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke a key (the API refuses it within 30 s)."""
    engine = open_database(Settings())
    try:
        revoked = ApiKeyStore(engine).revoke(name)
    finally:
        engine.dispose()
    if not revoked:
        raise fail(f"no active API key is named {name!r}", 1)
    out.print(f"revoked {name}")
