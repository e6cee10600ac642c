"""Container health checks for the twin_platform images (the slim images have no curl).

    python healthcheck.py URL      GET URL answers 2xx; ``${VAR}`` in URL is read from the environment
    python healthcheck.py grpc     the Dagster code server answers on DAGSTER_CODE_SERVER_PORT (4000)
    python healthcheck.py daemon   the Dagster daemon's heartbeats are recent (``dagster-daemon liveness-check``)
    python healthcheck.py dagster  whichever the dagster image's entrypoint started: webserver or daemon
    python healthcheck.py cuda     torch sees a CUDA device (the trainer image)

Exit 0 when healthy, 1 when not (Docker's HEALTHCHECK contract). Standard library only, so the check costs
no import of the platform except where a Dagster command is the check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 8.0
# Written by the dagster image's entrypoint (docker/dagster_entrypoint.py): which service this container runs.
SERVICE_FILE = "service"


def check_http(url: str) -> tuple[bool, str]:
    url = os.path.expandvars(url)
    if "$" in url:
        return False, f"unset variable in {url}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (http only, below)
            return 200 <= response.status < 300, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def check_command(argv: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS * 3, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{argv[0]}: {exc}"
    return done.returncode == 0, (done.stdout + done.stderr).strip()[-500:]


def check_grpc() -> tuple[bool, str]:
    port = os.environ.get("DAGSTER_CODE_SERVER_PORT", "4000")
    return check_command(["dagster", "api", "grpc-health-check", "-h", "127.0.0.1", "-p", port])


def check_daemon() -> tuple[bool, str]:
    return check_command(["dagster-daemon", "liveness-check"])


def check_dagster() -> tuple[bool, str]:
    home = Path(os.environ.get("DAGSTER_HOME", "/opt/dagster/home"))
    try:
        service = (home / SERVICE_FILE).read_text().strip()
    except OSError:
        return False, f"no {home / SERVICE_FILE}: the entrypoint has not started a service"
    if service == "webserver":
        port = os.environ.get("DAGSTER_WEBSERVER_PORT", "3000")
        return check_http(f"http://127.0.0.1:{port}/server_info")
    if service == "daemon":
        return check_daemon()
    return True, f"{service}: no health check for a one-off command"


def check_cuda() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    return True, f"{torch.cuda.device_count()} CUDA device(s): {torch.cuda.get_device_name(0)}"


CHECKS = {"grpc": check_grpc, "daemon": check_daemon, "dagster": check_dagster, "cuda": check_cuda}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1  # Docker reserves 2; anything but 0 is unhealthy
    target = argv[0]
    if target.startswith(("http://", "https://")):
        healthy, detail = check_http(target)
    elif target in CHECKS:
        healthy, detail = CHECKS[target]()
    else:
        print(f"unknown check {target!r}; one of: URL, {', '.join(CHECKS)}", file=sys.stderr)
        return 1
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
