"""``twin up`` as a user runs it, for the tests that need the real process tree: free ports, its output in a
file, the banner read back (API key, curl example), and a Ctrl-C that must stop everything, by PID."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres

TWIN = Path(sys.executable).with_name("twin")
BANNER_END = "(Ctrl-C stops everything)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def up_env(tmp_path: Path) -> dict[str, str]:
    """An environment for ``twin up`` with its own data dir, Dagster home and free ports."""
    return {
        **os.environ,
        "TWIN_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TWIN_DAGSTER_PORT": str(free_port()),
        "TWIN_API_PORT": str(free_port()),
    }


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TWIN_DAGSTER_PORT']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TWIN_API_PORT']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_banner(self, timeout: float = 900) -> str:
        """The output once the banner is complete; fails if ``twin up`` exits or takes longer."""
        deadline = time.monotonic() + timeout
        while BANNER_END not in (text := self.output()):
            assert self.process.poll() is None, f"twin up exited with {self.process.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"no banner within {timeout:.0f} s:\n{text}"
            time.sleep(1)
        return text

    def family(self) -> set[int]:
        try:
            return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def stop(self, timeout: float = 90) -> None:
        """Ctrl-C, as a user would; then nothing it started may be left (processes killed by PID if so)."""
        family = self.family()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            pytest.fail(f"twin up did not stop within {timeout:.0f} s of Ctrl-C")
        finally:
            for pid in family:  # a failed test must not leave processes behind either
                if psutil.pid_exists(pid):
                    psutil.Process(pid).kill()
            pgdata = Path(self.env["TWIN_DATA_DIR"]) / "pgdata"
            if pgdata.exists() and EmbeddedPostgres(pgdata).status().running:
                EmbeddedPostgres(pgdata).stop()


def start_up(env: dict[str, str], log: Path, *args: str) -> Up:
    """Start ``twin up ARGS`` in its own session (as a terminal would), its output going to ``log``."""
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(TWIN), "up", *args], env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Up(process, log, env)


def banner_key(output: str) -> str:
    """The API key the (last) banner shows."""
    keys = re.findall(r"^API key:\s+(twin_\S+)$", output, re.MULTILINE)
    assert keys, output
    return keys[-1]


def banner_curl(output: str) -> list[str]:
    """The (last) banner's curl example, split as a shell would."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
    assert lines, output
    return shlex.split(lines[-1])


def run_curl(command: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run a curl command line once (no retry); its HTTP status and body."""
    assert command[0] == "curl"
    done = subprocess.run(
        [*command, "--max-time", str(int(timeout)), "-w", "\n%{http_code}"],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=False,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body
