"""``twin up`` (what ``make run`` runs), as a real process tree: Postgres, dagster dev, a materialization,
a banner that shows only once the API is ready, one local API key across restarts, and a Ctrl-C that leaves
nothing behind. The local key and the readiness wait are also tested on their own (fast)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import dagster as dg
import httpx
import psutil
import pytest
from pydantic import SecretStr

from twin_platform.adapters.postgres.api_store import ApiKeyStore
from twin_platform.adapters.postgres.database import open_database
from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.local_key import KEY_FILE_NAME, LOCAL_KEY_NAME, local_api_key
from twin_platform.cli.up import wait_until_ready
from twin_platform.settings import Settings
from twin_platform_tests.up_process import TWIN, banner_curl, banner_key, run_curl, start_up, up_env


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


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_up_serves_the_ui_materializes_the_demo_and_stops_cleanly(tmp_path: Path):
    env = up_env(tmp_path)
    data_dir = Path(env["TWIN_DATA_DIR"])
    up = start_up(env, tmp_path / "up.log")
    twin_bin = TWIN
    family: set[int] = set()
    postmaster: int | None = None
    try:
        output = up.wait_for_banner(timeout=900)
        # Ready means ready: the banner's own curl example answers on its first try, with sources.
        assert "The RAG API is ready" in output, output
        status, body = run_curl(banner_curl(output))
        assert status == 200, body
        assert json.loads(body)["sources"], body
        assert httpx.get(f"{up.dagster_url}/server_info", timeout=10).status_code == 200
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
        # through the daemon (author_sources_sensor reports the change, automation starts the runs).
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

        family = up.family()
        assert len(family) >= 2  # dagster dev and what it started
        postmaster = EmbeddedPostgres(data_dir / "pgdata").status().pid
        assert postmaster is not None
    finally:
        up.stop()
    assert up.process.returncode == 0, up.output()
    survivors = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert survivors == [], "processes left behind after Ctrl-C"
    assert "stopped embedded Postgres" in up.output()
    assert postmaster is not None
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == "zombie"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_up_keeps_one_local_key_across_restarts_and_its_banner_curl_answers_first_time(tmp_path: Path):
    env = up_env(tmp_path)
    key_file = Path(env["TWIN_DATA_DIR"]) / KEY_FILE_NAME
    keys = []
    for run in (1, 2):
        up = start_up(env, tmp_path / f"up-{run}.log", "--no-materialize")
        try:
            output = up.wait_for_banner(timeout=900)
            keys.append(banner_key(output))
            assert "The RAG API is ready" in output, output
            assert ("a new local key" in output) == (run == 1), output
            assert ("the same local key as in earlier runs" in output) == (run == 2), output
            assert key_file.read_text().strip() == keys[-1]
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            # The key authenticates, and the banner's curl answers on its first try (no retry, no wait).
            models = httpx.get(f"{up.api_url}/v1/models", headers={"X-API-Key": keys[-1]}, timeout=30)
            assert models.status_code == 200, models.text
            if run == 1:
                status, body = run_curl(banner_curl(output))
                assert status == 200, body
                assert json.loads(body)["answer"].strip(), body
        finally:
            up.stop()
        assert up.process.returncode == 0, up.output()
    assert keys[0] == keys[1]


# -- the local key on its own ------------------------------------------------------------------------------


@pytest.fixture
def key_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=SecretStr(database_url), data_dir=tmp_path / "keydata")


def verified_name(settings: Settings, key: str) -> str | None:
    engine = open_database(settings)
    try:
        return ApiKeyStore(engine).verify(key)
    finally:
        engine.dispose()


def test_local_key_is_kept_hashed_and_in_a_private_file(key_settings: Settings):
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        first = local_api_key(key_settings)
    finally:
        os.umask(old_umask)
    assert first.new
    assert "no key file" in first.reason
    assert first.path == key_settings.data_path / KEY_FILE_NAME
    assert first.path.read_text().strip() == first.key
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert verified_name(key_settings, first.key) == LOCAL_KEY_NAME
    engine = open_database(key_settings)
    try:
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalars().all()
    finally:
        engine.dispose()
    assert first.key not in stored  # only its hash is in the database
    assert len(stored) == 1

    again = local_api_key(key_settings)
    assert (again.key, again.new) == (first.key, False)

    first.path.chmod(0o644)  # loosened by hand: tightened again, the key kept
    kept = local_api_key(key_settings)
    assert (kept.key, kept.new) == (first.key, False)
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600


def test_a_revoked_or_lost_local_key_is_replaced_and_says_why(key_settings: Settings):
    first = local_api_key(key_settings)
    engine = open_database(key_settings)
    try:
        assert ApiKeyStore(engine).revoke(LOCAL_KEY_NAME)
    finally:
        engine.dispose()
    replaced = local_api_key(key_settings)
    assert replaced.new
    assert replaced.key != first.key
    assert "revoked" in replaced.reason
    assert replaced.path.read_text().strip() == replaced.key
    assert verified_name(key_settings, replaced.key) == LOCAL_KEY_NAME
    assert verified_name(key_settings, first.key) is None

    replaced.path.unlink()  # lost: the active key in the database cannot be shown again, so it is revoked
    lost = local_api_key(key_settings)
    assert lost.new
    assert lost.key not in {first.key, replaced.key}
    assert "no key file" in lost.reason
    assert "previous local key is revoked" in lost.reason
    assert verified_name(key_settings, replaced.key) is None
    assert verified_name(key_settings, lost.key) == LOCAL_KEY_NAME
    assert stat.S_IMODE(lost.path.stat().st_mode) == 0o600


# -- waiting for /ready --------------------------------------------------------------------------------------


class FakeReady:
    """``/ready`` of an API whose model loads: 503 for the first ``loading`` polls, then 200 (or an error)."""

    def __init__(self, loading: int, error: str | None = None) -> None:
        self.loading = loading
        self.error = error
        self.polls = 0


@pytest.fixture
def fake_api() -> Iterator[tuple[str, list[FakeReady]]]:
    states: list[FakeReady] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = states[0]
            state.polls += 1
            ready = state.polls > state.loading and state.error is None
            body = {"status": "ready" if ready else "not ready", "database": True, "llm": ready}
            body |= {"llm_backend": "local", "llm_error": state.error if state.polls > state.loading else None}
            data = json.dumps(body).encode()
            self.send_response(200 if ready else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", states
    server.shutdown()
    server.server_close()


class Running:
    returncode = None

    def poll(self) -> None:
        return None


def test_wait_until_ready_waits_for_the_model_then_reports_ready(fake_api, capsys):
    url, states = fake_api
    states.append(FakeReady(loading=3))
    readiness = wait_until_ready(url, cast(subprocess.Popen[bytes], Running()), interval=0.05)
    assert readiness.ready
    assert states[0].polls == 4  # it waited through three 503s and stopped at the first 200
    assert "loading its local model" in capsys.readouterr().out  # progress while waiting


def test_wait_until_ready_gives_up_with_the_reason_when_the_model_fails(fake_api):
    url, states = fake_api
    states.append(FakeReady(loading=1, error="OSError: no such file"))
    readiness = wait_until_ready(url, cast(subprocess.Popen[bytes], Running()), interval=0.05)
    assert not readiness.ready
    assert "OSError: no such file" in readiness.reason
    states[0] = FakeReady(loading=10**6)
    timed_out = wait_until_ready(url, cast(subprocess.Popen[bytes], Running()), timeout=0.3, interval=0.05)
    assert not timed_out.ready
    assert "loading its local model for over 0 s" in timed_out.reason


def test_wait_until_ready_fails_when_the_api_exits(fake_api):
    url, states = fake_api
    states.append(FakeReady(loading=10**6))
    exited = subprocess.Popen(["true"])
    exited.wait()
    with pytest.raises(RuntimeError, match="exited with code 0"):
        wait_until_ready(url, exited, interval=0.05)
