"""One data dir from any folder (TWIN_DATA_DIR, else the project's .twin, else a per-user default), shown by
``twin db status``; one-shot commands stop the embedded Postgres they had to start; ``twin db url`` for psql."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from twin_platform.adapters.postgres.database import libpq_url
from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.lifecycle import EmbeddedScope
from twin_platform.settings import Settings, default_data_dir, is_project_root

TWIN = Path(sys.executable).with_name("twin")


def checkout(folder: Path, name: str = "twin_platform") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    return folder


# --- resolution order ------------------------------------------------------------------------------------------


def test_the_checkout_around_the_current_directory_comes_first(tmp_path: Path):
    project = checkout(tmp_path / "project", name="twin-platform")  # the name as PEP 503 spells it
    deep = project / "notes" / "2026"
    deep.mkdir(parents=True)
    checkout(project / "vendored", name="something-else")  # another project's pyproject on the way up
    (project / "vendored" / "src").mkdir()
    installed_from = checkout(tmp_path / "other-checkout")
    for cwd in (project, deep, project / "vendored" / "src"):
        path, source = default_data_dir(cwd=cwd, env={}, package_parent=installed_from)
        assert path == project / ".twin", cwd
        assert "current directory" in source


def test_outside_a_checkout_the_editable_install_decides_then_the_per_user_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    installed_from = checkout(tmp_path / "checkout")
    path, source = default_data_dir(cwd=elsewhere, env={}, package_parent=installed_from)
    assert (path, "installed from" in source) == (installed_from / ".twin", True)

    site_packages = tmp_path / "site-packages"  # a wheel install: no pyproject above the package
    site_packages.mkdir()
    xdg = tmp_path / "xdg"
    path, source = default_data_dir(cwd=elsewhere, env={"XDG_DATA_HOME": str(xdg)}, package_parent=site_packages)
    assert (path, source) == (xdg / "twin_platform", "the per-user default ($XDG_DATA_HOME/twin_platform)")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for env in ({}, {"XDG_DATA_HOME": "relative/dir"}):  # relative XDG values are invalid and ignored
        path, _ = default_data_dir(cwd=elsewhere, env=env, package_parent=site_packages)
        assert path == tmp_path / "home" / ".local" / "share" / "twin_platform"


def test_is_project_root_reads_the_project_name(tmp_path: Path):
    assert is_project_root(checkout(tmp_path / "a"))
    assert not is_project_root(checkout(tmp_path / "b", name="twin_platform_extras"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "pyproject.toml").write_text("[project\nname = broken")
    assert not is_project_root(tmp_path / "c")
    assert not is_project_root(tmp_path / "missing")


def test_twin_data_dir_wins_and_settings_say_where_the_data_dir_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    project = checkout(tmp_path / "project")
    monkeypatch.chdir(project)
    assert Settings().data_location == (tmp_path / "data", "TWIN_DATA_DIR")  # set by the isolated_env fixture
    monkeypatch.delenv("TWIN_DATA_DIR")
    path, source = Settings().data_location
    assert path == project / ".twin"
    assert source == f"the project around the current directory ({project})"
    assert not path.exists()  # only data_path creates it
    assert Settings().data_path == path
    assert path.is_dir()


# --- one-shot commands from other folders ------------------------------------------------------------------------


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Running postgres servers of ``pgdata`` (by command line: catches one the pid file no longer names)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(process)
    return found


def run_twin(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TWIN_DATA_DIR", "DAGSTER_HOME"}}
    return subprocess.run(
        [str(TWIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_one_shot_commands_share_one_data_dir_from_any_folder_and_stop_the_server_they_started(tmp_path: Path):
    project = checkout(tmp_path / "p")
    folders = [project / "notes" / "deep", project / "scripts", project]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    data_dir = project / ".twin"
    pgdata = data_dir / "pgdata"
    try:
        added = run_twin(folders[0], "authors", "add", "Jane Doe", "--alias", "J. Doe", "--json")
        assert added.returncode == 0, added.stderr
        # (b) the command started the embedded server (there was none) and stopped it when it finished
        assert (pgdata / "PG_VERSION").exists()
        assert not EmbeddedPostgres(pgdata).status().running
        assert postgres_processes(pgdata) == []

        listed = run_twin(folders[1], "authors", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        # (a) another folder, the same data dir: the author is there, and no second data dir was made
        assert [a["id"] for a in json.loads(listed.stdout)] == ["jane-doe"]
        assert postgres_processes(pgdata) == []
        assert not any((folder / ".twin").exists() for folder in folders[:2])
        assert (data_dir / "dagster" / "dagster.yaml").exists()  # the Dagster instance lives there too

        status = run_twin(folders[2], "db", "status", "--json")
        assert status.returncode == 1  # not running
        info = json.loads(status.stdout)
        assert (info["data_dir"], info["pgdata"], info["running"]) == (str(data_dir), str(pgdata), False)
        assert info["data_dir_source"] == f"the project around the current directory ({project})"

        # A server that was already running is left running, by the same process.
        started = run_twin(folders[0], "db", "start")
        assert started.returncode == 0, started.stderr
        pid = EmbeddedPostgres(pgdata).status().pid
        assert pid is not None
        assert run_twin(folders[1], "authors", "list", "--json").returncode == 0
        assert EmbeddedPostgres(pgdata).status().pid == pid

        stopped = run_twin(folders[1], "db", "stop")
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
        assert postgres_processes(pgdata) == []
    finally:
        EmbeddedPostgres(pgdata).stop()


@pytest.mark.slow
def test_a_failing_one_shot_command_stops_the_server_too(tmp_path: Path):
    project = checkout(tmp_path / "p")
    pgdata = project / ".twin" / "pgdata"
    try:
        result = run_twin(project, "import", str(project), "--author", "Nobody Known")
        assert result.returncode == 2
        assert "'Nobody Known' is not registered" in result.stderr
        assert (pgdata / "PG_VERSION").exists()
        assert postgres_processes(pgdata) == []
    finally:
        EmbeddedPostgres(pgdata).stop()


@pytest.mark.slow
def test_sigterm_ends_a_one_shot_command_and_stops_the_server_it_started(tmp_path: Path):
    project = checkout(tmp_path / "p")
    pgdata = project / ".twin" / "pgdata"
    env = {k: v for k, v in os.environ.items() if k not in {"TWIN_DATA_DIR", "DAGSTER_HOME"}}
    # `twin search` starts the server, opens the runtime, then searches: the search is made to hang here, so
    # the signal always lands while the command runs (a fast machine finished a real search before it came)
    hanging_search = (
        "import sys, time\n"
        "import twin_platform.cli.search as search\n"
        "search.hybrid_search = lambda *args, **kwargs: time.sleep(300)\n"
        "from twin_platform.cli.main import app\n"
        "sys.argv = ['twin', 'search', 'anything']\n"
        "app()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", hanging_search], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not EmbeddedPostgres(pgdata).status().running:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 128 + signal.SIGTERM, err
        # the server's processes exit just after the stop returns: give a loaded machine a few seconds
        deadline = time.monotonic() + 15
        while postgres_processes(pgdata) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert postgres_processes(pgdata) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        EmbeddedPostgres(pgdata).stop()


def test_a_server_others_connected_to_stays_up_and_the_command_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    server = EmbeddedPostgres(tmp_path / "pgdata")
    try:
        server.start()
        scope = EmbeddedScope(server, was_running=False)  # as if this command had started it
        state = server.status()
        with psycopg.connect(host=str(state.socket_dir), user="postgres", dbname="twin") as other:
            other.execute("SELECT 1")
            scope.close()
            assert server.status().running
            note = " ".join(capsys.readouterr().err.split())
            assert "stays up: 1 other connection(s) use it" in note
            assert "twin db stop" in note
        EmbeddedScope(server, was_running=True).close()  # a server the command found running is left alone
        assert server.status().running
        scope.close()  # the other client is gone: now it is stopped
        assert not server.status().running
    finally:
        server.stop()


# --- twin db url ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "port", "expected"),
    [
        (
            "postgresql+psycopg://postgres@/twin?host=/tmp/a b/pgdata",
            5432,
            {"user": "postgres", "dbname": "twin", "host": "/tmp/a b/pgdata", "port": "5432"},
        ),
        (
            "postgresql+psycopg://us%40er:p%40ss%2Fw%3Ard@db.example.com:6543/my%20db?sslmode=require",
            None,
            {"user": "us@er", "host": "db.example.com", "port": "6543", "dbname": "my db", "sslmode": "require"},
        ),
        ("postgresql://app@[fd00::5]/warehouse", None, {"user": "app", "host": "fd00::5", "dbname": "warehouse"}),
    ],
)
def test_libpq_url_is_what_libpq_parses_back(url: str, port: int | None, expected: dict[str, str]):
    converted = libpq_url(url, port=port)
    assert converted.startswith("postgresql://")
    assert "+psycopg" not in converted
    assert conninfo_to_dict(converted) == expected  # libpq's own parser (PQconninfoParse)
    if ":" in (url.split("@", maxsplit=1)[0].split("//")[1]):  # a password: only with with_password
        assert conninfo_to_dict(libpq_url(url, with_password=True))["password"] == "p@ss/w:rd"
