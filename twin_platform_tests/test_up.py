"""``twin up`` (what ``make run`` runs), as a real process tree: Postgres, dagster dev, a materialization,
and a Ctrl-C that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psutil
import pytest

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_searchable(twin_bin: Path, env: dict[str, str], query: str, title: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(
            [str(twin_bin), "search", query, "--k", "1", "--json"], env=env, capture_output=True, text=True, check=False
        )
        hits = json.loads(found.stdout)["hits"] if found.returncode == 0 else []
        if hits and hits[0]["title"] == title:
            return
        time.sleep(5)
    pytest.fail(f"{title!r} did not become searchable within {timeout:.0f} s")


def test_up_serves_the_ui_materializes_the_demo_and_stops_cleanly(tmp_path: Path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "TWIN_DATA_DIR": str(data_dir),
        "TWIN_DAGSTER_PORT": str(port),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    log = (tmp_path / "up.log").open("w+")
    twin_bin = Path(sys.executable).with_name("twin")
    up = subprocess.Popen(
        [str(twin_bin), "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    family: set[int] = set()
    postmaster: int | None = None
    try:
        deadline = time.monotonic() + 300
        while "Dagster UI:" not in Path(log.name).read_text():
            assert up.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=10) as response:
            assert response.status == 200
        output = Path(log.name).read_text()
        assert "for mara-ellison: succeeded" in output, output
        assert "for marts: succeeded" in output, output

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
            with dg.DagsterInstance.get() as instance:
                event = instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
        assert event is not None
        assert event.asset_materialization is not None
        assert event.asset_materialization.partition == "mara-ellison"

        # Without touching the UI: a new author's folder, then a file added to it, become searchable
        # through the daemon (author sensor, import-folder sensor, warehouse sensor, automation).
        notes = tmp_path / "notes"
        notes.mkdir()
        (notes / "first.md").write_text("# Capybara caching\n\nCapybaras cache embeddings by content hash.\n")
        subprocess.run(
            [str(twin_bin), "authors", "add", "Test Author", "--import", str(notes)],
            env=env,
            check=True,
            capture_output=True,
        )
        wait_until_searchable(twin_bin, env, "capybara caching embeddings", "Capybara caching")
        (notes / "second.md").write_text("# Quokka latency\n\nQuokkas keep p95 retrieval under fifty ms.\n")
        wait_until_searchable(twin_bin, env, "quokka latency retrieval", "Quokka latency")

        family = {child.pid for child in psutil.Process(up.pid).children(recursive=True)}
        assert len(family) >= 2  # dagster dev and what it started
        postmaster = EmbeddedPostgres(data_dir / "pgdata").status().pid
        assert postmaster is not None
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            pytest.fail("twin up did not stop within 90 s of Ctrl-C")
        for pid in family:  # a failed test must not leave processes behind either
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
        if EmbeddedPostgres(data_dir / "pgdata").status().running:
            EmbeddedPostgres(data_dir / "pgdata").stop()
    assert up.returncode == 0, Path(log.name).read_text()
    survivors = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert survivors == [], "processes left behind after Ctrl-C"
    assert "stopped embedded Postgres" in Path(log.name).read_text()
    assert postmaster is not None
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == "zombie"
