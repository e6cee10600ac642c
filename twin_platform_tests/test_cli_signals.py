"""``twin materialize`` as a real process stops at SIGTERM or Ctrl-C: the current run fails, no further run starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.main import app
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, write
from twin_platform_tests.web.server import Page, Site

pytestmark = pytest.mark.slow

runner = CliRunner()


def twin(*args: str) -> None:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM to the process", "SIGINT to its process group (Ctrl-C)"],
)
def test_materialize_stops_at_a_signal(
    signum: signal.Signals, to_group: bool, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The first author's only link is held open by the server, so the first run is provably in progress
    # (inside its crawl) when the signal is sent; the second author's run must then never start.
    requested, release = threading.Event(), threading.Event()

    def held(_path: str) -> Page:
        requested.set()
        release.wait(300)
        # A 404 fails the crawl either way, so the first run's outcome does not depend on whether the
        # signal or the released response reaches the process first.
        return Page("gone", status=404, content_type="text/plain", etag=False)

    site.route("/held", held)
    for key, value in {
        "TWIN_CRAWL_ALLOWED_HOSTS": "127.0.0.1",
        "TWIN_CRAWL_MIN_INTERVAL_SECONDS": "0",
        "TWIN_CRAWL_READ_TIMEOUT": "300",  # the held request must not time out before the signal
    }.items():
        monkeypatch.setenv(key, value)
    notes = tmp_path / "notes"
    write(notes / "one.md", markdown("One", "A note that is never imported, because its run never starts."))
    twin("authors", "add", "Held Author", "--link", site.url("/held"), "--ignore-robots")
    twin("authors", "add", "Second Author", "--import", str(notes))
    pgdata = Settings().pgdata_dir
    twin("db", "stop")  # so that the materialize process starts the embedded Postgres itself

    log_path = tmp_path / "materialize.log"
    twin_bin = Path(sys.executable).with_name("twin")
    authors = ["--author", "held-author", "--author", "second-author"]  # in this order: the held run first
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(twin_bin), "materialize", "--select", "raw_documents", *authors],
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while not requested.wait(1):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
        with dg.DagsterInstance.get() as instance:
            [running] = instance.get_runs()
        assert running.status == dg.DagsterRunStatus.STARTED
        assert running.tags["dagster/partition"] == "held-author"

        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        release.set()
        process.wait(120)
    finally:
        release.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        postgres_running = EmbeddedPostgres(pgdata).status().running
        EmbeddedPostgres(pgdata).stop()

    output = log_path.read_text()
    assert process.returncode == 128 + signum, output
    assert f"interrupted by {signum.name}" in output, output
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert [run.run_id for run in runs] == [running.run_id], "a run started after the signal"
    assert runs[0].status == dg.DagsterRunStatus.FAILURE
    # Like every one-shot command, materialize stops the embedded Postgres it started, also when interrupted.
    assert not postgres_running
