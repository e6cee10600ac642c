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
from twin_platform.cli.console import err, fail, out
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


def wait_for_dagster(settings: Settings, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    url = f"http://{settings.dagster_host}:{settings.dagster_port}/server_info"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"Dagster did not answer at {url} within {timeout:.0f} s")


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


def up_command(
    materialize: bool = typer.Option(
        True, help="Materialize the demo author's assets (collection, features, marts) once Dagster is up."
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
    try:
        demo = register_demo(settings)
        out.print(f"demo author {demo['author']}: {demo['inserted']} inserted, {demo['unchanged']} unchanged")
        prepare_dbt()
        dagster = start_dagster(settings)
        out.print(f"starting Dagster (DAGSTER_HOME={home}) ...")
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
                ]
            )
            if code != 0:
                err.print("[red]the first materialization failed; see the run in the UI[/]")
        out.print(f"\n[bold green]Dagster UI:[/] {ui}/asset-groups   (Ctrl-C stops everything)\n")
        while dagster.poll() is None:
            time.sleep(1)
        raise fail(f"dagster dev exited with code {dagster.returncode}", 1)
    except KeyboardInterrupt:
        out.print("\nstopping ...")
    except RuntimeError as exc:
        raise fail(str(exc), 1) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dagster is not None:
            stop_process_group(dagster)
        if embedded is not None and embedded.stop():
            out.print("stopped embedded Postgres")
        out.print("stopped" if stop_requested else "done")
