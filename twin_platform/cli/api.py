"""``twin api`` and ``twin apikey``: serve the RAG API, manage its keys."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from twin_platform.adapters.postgres.api_store import ApiKeyError, ApiKeyStore
from twin_platform.adapters.postgres.database import open_database
from twin_platform.cli.console import fail, literal, out, print_json
from twin_platform.settings import Settings

keys_app = typer.Typer(help="API keys for the RAG API (stored hashed; shown once).", no_args_is_help=True)


def api_command(
    host: str | None = typer.Option(None, "--host", help="Bind address (default TWIN_API_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default TWIN_API_PORT, 8000)."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="Worker processes (default TWIN_API_WORKERS; 0: one per core, or one with the local model).",
    ),
) -> None:
    """Serve the RAG API with uvicorn (OpenAPI docs at /schema/swagger)."""
    import uvicorn

    from twin_platform.adapters.postgres.database import database_url
    from twin_platform.api.access_log import uvicorn_log_config
    from twin_platform.api.app import create_app

    overrides = {"api_host": host, "api_port": port, "api_workers": workers}
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    try:
        create_app(settings)  # refuses unsafe settings (auth off on a public address) before anything starts
    except ValueError as exc:
        raise fail(str(exc)) from None
    count = worker_count(settings)
    # Workers are processes that read their settings from the environment; they share one database, started
    # here (when embedded) rather than raced for by every worker.
    os.environ["TWIN_DATABASE_URL"] = database_url(settings)
    os.environ.update({"TWIN_API_HOST": settings.api_host, "TWIN_API_PORT": str(settings.api_port)})
    # Each worker's torch gets its share of the cores instead of every worker using all of them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    uvicorn.run(
        "twin_platform.api.app:create_app",
        factory=True,
        workers=count,
        host=settings.api_host,
        port=settings.api_port,
        log_config=uvicorn_log_config(),
        proxy_headers=True,
        forwarded_allow_ips=settings.api_forwarded_allow_ips,
        timeout_keep_alive=5,
        limit_concurrency=256,
        timeout_graceful_shutdown=5,
    )


def worker_count(settings: Settings) -> int:
    """``TWIN_API_WORKERS``, or by default one per core, except one with the in-process local model."""
    if settings.api_workers:
        return settings.api_workers
    return 1 if settings.llm_backend == "local" else max(1, os.cpu_count() or 1)


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
        out.print(literal("API key for ", (name, "bold"), " (shown once, keep it safe):\n", key))


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
        table.add_row(*(literal(row[c] or "") for c in ("name", "prefix", "created_at", "last_used_at", "revoked")))
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
    out.print(literal("revoked ", name))
