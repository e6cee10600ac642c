"""``twin up`` (what ``make run`` runs): Postgres, the demo author, Dagster, and a first materialization.

Dagster (webserver + daemon) runs in its own process group; Ctrl-C (SIGINT) or SIGTERM stops that
whole group and then the embedded Postgres, so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import typer

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.console import err, fail, literal, out
from twin_platform.cli.demo import register_demo
from twin_platform.cli.instance import ensure_dagster_home
from twin_platform.settings import Settings

WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def _reset_sigint() -> None:
    # A shell running `make run &` ignores SIGINT, and children inherit that; Dagster must not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def prepare_dbt() -> None:
    """Parse the dbt project once, before Dagster's processes load it concurrently."""
    subprocess.check_call([sys.executable, "-c", "import twin_platform.defs.marts.assets"])


def start_dagster(settings: Settings) -> subprocess.Popen[bytes]:
    target = ["-w", str(WORKSPACE)] if WORKSPACE.exists() else ["-m", "twin_platform.definitions"]
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        *target,
        "-h",
        settings.dagster_host,
        "-p",
        str(settings.dagster_port),
    ]
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_reset_sigint)  # noqa: PLW1509


def start_api(settings: Settings) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "twin_platform.cli.main", "api"]
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_reset_sigint)  # noqa: PLW1509


def local_api_key(settings: Settings) -> str:
    """A fresh key named ``local`` (the previous one is revoked: a key is only ever shown once)."""
    from twin_platform.adapters.postgres.api_store import ApiKeyStore
    from twin_platform.adapters.postgres.database import open_database

    engine = open_database(settings)
    try:
        store = ApiKeyStore(engine)
        store.revoke("local")
        return store.create("local")
    finally:
        engine.dispose()


def wait_for_dagster(settings: Settings, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    url = f"http://{settings.dagster_host}:{settings.dagster_port}/server_info"
    wait_for_http(url, process, "Dagster", timeout)


def wait_for_http(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer at {url} within {timeout:.0f} s")


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGINT the group (Dagster's graceful shutdown), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; give the rest of its group the same time to follow it.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def print_endpoints(ui: str, api_url: str, key: str) -> None:
    out.print(literal("\n", ("Dagster UI:", "bold green"), f" {ui}/asset-groups"))
    out.print(literal(("RAG API:", "bold green"), f"    {api_url}  (docs: {api_url}/schema/swagger)"))
    out.print(literal(("API key:", "bold green"), f"    {key}"))
    out.print(
        literal(
            f"  curl -s {api_url}/v1/rag -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' ",
            """-d '{"query": "How do you keep search up while swapping embedding models?"}'""",
        ),
        soft_wrap=True,
    )


def up_command(
    materialize: bool = typer.Option(
        True, help="Materialize the demo author's assets (collection, features, marts) once Dagster is up."
    ),
    train: bool = typer.Option(
        False, help="Also run the training assets (datasets, SFT, DPO, merged twin): about 10 minutes on CPU."
    ),
) -> None:
    """Start everything for local use and keep it running until Ctrl-C."""
    settings = Settings()
    home = ensure_dagster_home(settings)
    embedded = None if settings.database_url is not None else EmbeddedPostgres(settings.pgdata_dir)
    stop_requested = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    dagster: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    try:
        demo = register_demo(settings)
        out.print(literal(f"demo author {demo['author']}: {demo['inserted']} inserted, {demo['unchanged']} unchanged"))
        prepare_dbt()
        dagster = start_dagster(settings)
        out.print(literal(f"starting Dagster (DAGSTER_HOME={home}) ..."))
        wait_for_dagster(settings, dagster)
        ui = f"http://{settings.dagster_host}:{settings.dagster_port}"
        if materialize:
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "twin_platform.cli.main",
                    "materialize",
                    "--author",
                    str(demo["author"]),
                    *([] if train else ["--select", "not group:training"]),
                ]
            )
            if code != 0:
                err.print("[red]the first materialization failed; see the run in the UI[/]")
        key = local_api_key(settings)
        api = start_api(settings)
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        wait_for_http(f"{api_url}/health", api, "the RAG API", 120)
        print_endpoints(ui, api_url, key)
        out.print("(Ctrl-C stops everything)\n")
        while dagster.poll() is None and api.poll() is None:
            time.sleep(1)
        raise fail("dagster dev or the RAG API exited unexpectedly", 1)
    except KeyboardInterrupt:
        out.print("\nstopping ...")
    except RuntimeError as exc:
        raise fail(str(exc), 1) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for process in (api, dagster):
            if process is not None:
                stop_process_group(process)
        if embedded is not None and embedded.stop():
            out.print("stopped embedded Postgres")
        out.print("stopped" if stop_requested else "done")
