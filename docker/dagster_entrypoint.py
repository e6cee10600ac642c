"""Entrypoint of the dagster image: pick the instance's run launcher from the environment, then start a service.

    docker run twin/dagster webserver      dagster-webserver on 0.0.0.0:$DAGSTER_WEBSERVER_PORT (3000)
    docker run twin/dagster daemon         dagster-daemon run (schedules, sensors, the run queue)
    docker run twin/dagster CMD [ARGS...]  any other command, with the same instance (e.g. dagster instance info)

``DAGSTER_RUN_LAUNCHER`` chooses the instance file: ``default`` (runs start as processes in the code-location
container), ``docker`` (a container per run) or ``k8s`` (a Kubernetes Job per run). A dagster.yaml cannot
branch, so the image carries one file per launcher, identical apart from ``run_launcher`` (a test checks that),
and this script copies the chosen one to ``$DAGSTER_HOME/dagster.yaml`` before it execs the service.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

CONFIG_DIR = Path(os.environ.get("DAGSTER_CONFIG_DIR", "/opt/dagster/config"))
LAUNCHER_FILES = {"default": "dagster.yaml", "docker": "dagster-docker.yaml", "k8s": "dagster-k8s.yaml"}
USAGE_EXIT = 64  # EX_USAGE


class UsageError(Exception):
    pass


def install_instance(environ: Mapping[str, str], config_dir: Path = CONFIG_DIR) -> Path:
    """Copy the dagster.yaml for ``DAGSTER_RUN_LAUNCHER`` into ``DAGSTER_HOME``; return the file written."""
    launcher = environ.get("DAGSTER_RUN_LAUNCHER", "").strip() or "default"
    if launcher not in LAUNCHER_FILES:
        raise UsageError(f"DAGSTER_RUN_LAUNCHER={launcher!r}: one of {', '.join(LAUNCHER_FILES)}")
    home = environ.get("DAGSTER_HOME")
    if not home:
        raise UsageError("DAGSTER_HOME is not set")
    target = Path(home) / "dagster.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_dir / LAUNCHER_FILES[launcher], target)
    return target


def service_argv(args: list[str], environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The service name (for the health check) and the command line to exec."""
    workspace = environ.get("DAGSTER_WORKSPACE", "/opt/dagster/workspace.yaml")
    if not args or args == ["webserver"]:
        port = environ.get("DAGSTER_WEBSERVER_PORT", "3000")
        return "webserver", ["dagster-webserver", "-h", "0.0.0.0", "-p", port, "-w", workspace]  # noqa: S104
    if args == ["daemon"]:
        return "daemon", ["dagster-daemon", "run", "-w", workspace]
    return args[0], args


def main(args: list[str], environ: Mapping[str, str]) -> int:
    try:
        target = install_instance(environ)
    except UsageError as exc:
        print(f"dagster entrypoint: {exc}", file=sys.stderr)
        return USAGE_EXIT
    service, argv = service_argv(args, environ)
    (target.parent / "service").write_text(service + "\n")
    os.execvp(argv[0], argv)  # noqa: S606 (replaces this process: signals reach the service directly)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
