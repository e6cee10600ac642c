"""``twin up`` (what ``make run`` runs): Postgres, the demo author, Dagster (whose daemon builds the demo), the API.

Dagster (webserver + daemon) runs in its own process group; Ctrl-C (SIGINT) or SIGTERM stops that
whole group and then the embedded Postgres, so nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.console import fail, literal, out
from twin_platform.cli.demo import register_demo
from twin_platform.cli.first_build import follow_first_build
from twin_platform.cli.instance import ensure_dagster_home
from twin_platform.cli.local_key import LocalKey, local_api_key
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


@dataclass(frozen=True)
class ApiReadiness:
    ready: bool
    seconds: float
    reason: str = ""  # why the API is not ready, when it is not


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET; a 4xx/5xx answer is an answer too (``/ready`` says 503 while loading)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def waiting_for(body: dict[str, Any] | None) -> str:
    if body is None:
        return "starting the RAG API"
    if not body.get("database", True):
        return "the RAG API is connecting to the database"
    return f"the RAG API is loading its {body.get('llm_backend', 'local')} model"


def wait_until_ready(
    api_url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 900.0,
    interval: float = 2.0,
    started: float | None = None,
) -> ApiReadiness:
    """Poll ``/ready`` until it answers 200, showing what the API waits for and for how long since it
    ``started`` (a spinner on a terminal, a line every 30 s in a log). Gives up, saying why, when the model
    failed to load or after waiting ``timeout`` seconds here; raises when the API process exits."""
    waiting_since = time.monotonic()
    started = waiting_since if started is None else started
    body: dict[str, Any] | None = None
    logged = 0.0
    with out.status("starting the RAG API ...") as status:
        while True:
            elapsed = time.monotonic() - started
            if process.poll() is not None:
                raise RuntimeError(f"the RAG API exited with code {process.returncode}")
            try:
                code, body = get_json(f"{api_url}/ready")
            except OSError:
                code = 0  # not listening yet
            else:
                if code == 200:
                    return ApiReadiness(True, elapsed)
                if body.get("llm_error"):
                    return ApiReadiness(False, elapsed, f"the model could not be loaded: {body['llm_error']}")
            if time.monotonic() - waiting_since > timeout:
                return ApiReadiness(False, elapsed, f"{waiting_for(body)} for over {elapsed:.0f} s")
            message = literal(waiting_for(body), f" ... {elapsed:.0f} s (the example below works once it is ready)")
            if out.is_terminal:
                status.update(message)
            elif elapsed - logged >= 30 or not logged:
                logged = max(elapsed, 0.001)
                out.print(message, soft_wrap=True)
            time.sleep(interval)


def print_endpoints(ui: str, api_url: str, key: LocalKey, readiness: ApiReadiness) -> None:
    def line(*parts: object | tuple[str, str]) -> None:
        out.print(literal(*parts), soft_wrap=True)  # never wrapped: URLs, paths and the key stay copyable

    line("\n", ("Dagster UI:", "bold green"), f" {ui}/asset-groups")
    line(("RAG API:", "bold green"), f"    {api_url}  (docs: {api_url}/schema/swagger)")
    line(("API key:", "bold green"), f"    {key.key}")
    if key.new:
        line(f"            a new local key ({key.reason}); kept for the next runs in {key.path} (mode 0600)")
    else:
        line(f"            the same local key as in earlier runs, kept in {key.path} (mode 0600)")
    if readiness.ready:
        line(("The RAG API is ready", "bold green"), f" (after {readiness.seconds:.0f} s); try it:")
    else:
        line(
            ("The RAG API is NOT ready: ", "bold red"),
            f"{readiness.reason}. /v1/search works; /v1/rag answers 503 until {api_url}/ready answers 200.",
        )
    line(
        f"  curl -s {api_url}/v1/rag -H 'Authorization: Bearer {key.key}' -H 'Content-Type: application/json' ",
        """-d '{"query": "How do you keep search up while swapping embedding models?"}'""",
    )


def up_command(
    materialize: bool = typer.Option(
        True, help="Wait until the Dagster daemon has built the demo author's assets (collection, features, marts)."
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
        dagster_started = datetime.now(UTC)
        dagster = start_dagster(settings)
        out.print(literal(f"starting Dagster (DAGSTER_HOME={home}) ..."))
        wait_for_dagster(settings, dagster)
        ui = f"http://{settings.dagster_host}:{settings.dagster_port}"
        key = local_api_key(settings)
        # The API starts now, so that its model loads while the demo author is materialized.
        api, api_started = start_api(settings), time.monotonic()
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        if materialize:  # the daemon builds it; `twin up` only follows (and trains, when asked)
            follow_first_build(settings, str(demo["author"]), dagster_started, train=train)
        readiness = wait_until_ready(api_url, api, started=api_started)
        print_endpoints(ui, api_url, key, readiness)
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
