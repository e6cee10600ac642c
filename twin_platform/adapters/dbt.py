"""The dbt project: where its sources are, the writable copy dbt runs in, and the environment its profile reads.

The sources are the repository's top-level ``dbt/`` folder; a wheel carries them as ``twin_platform/dbt_project``
(setup.py's build step copies them there). dbt writes ``target/`` and ``logs/`` into its project folder, and an
installed package (a wheel in an image, owned by root) is read-only, so dbt never runs on the sources:
:func:`dbt_project_copy` copies them to ``{data dir}/dbt/<digest>``, named by the sources and the dbt version,
so a new release or an edited model gets a fresh folder while runs of the previous code keep theirs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from sqlalchemy import make_url

PACKAGED_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"  # in a wheel
CHECKOUT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"  # in the repository (editable install)
# The project's sources: dbt never runs here.
DBT_PROJECT_DIR = PACKAGED_PROJECT_DIR if PACKAGED_PROJECT_DIR.is_dir() else CHECKOUT_PROJECT_DIR
# What dbt writes into a project folder: never part of the sources or their digest.
DBT_OUTPUTS = ("target", "logs", "dbt_packages")


def ensure_dbt_on_path() -> None:
    """dagster-dbt runs ``dbt`` from PATH; a virtualenv used without activation has it beside python."""
    if shutil.which("dbt") is None and (Path(sys.executable).parent / "dbt").exists():
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _source_files(source: Path) -> list[Path]:
    """The project's files: not dbt's outputs (a checkout may have run dbt in place), not hidden files."""
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not set(path.relative_to(source).parts) & {*DBT_OUTPUTS, "__pycache__"}
        and not any(part.startswith(".") for part in path.relative_to(source).parts)
    )


def source_digest(source: Path = DBT_PROJECT_DIR) -> str:
    """A short digest of the project's files and the installed dbt-core: what a parsed copy depends on."""
    digest = hashlib.sha256(version("dbt-core").encode())
    for path in _source_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def dbt_project_copy(data_dir: Path, source: Path = DBT_PROJECT_DIR) -> Path:
    """``{data_dir}/dbt/<digest>``: a writable copy of ``source``, made once (atomically: concurrent loaders of
    the code location, such as the gRPC server and each run worker, may race here)."""
    target = data_dir / "dbt" / source_digest(source)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    try:
        for path in _source_files(source):
            destination = staging / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # not lost to another process that renamed its copy first: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def dbt_environment(database_url: str) -> dict[str, str]:
    """``TWIN_DBT_*`` variables for the project's profiles.yml (a unix-socket host works as well as a TCP one)."""
    url = make_url(database_url)
    socket_host = url.query.get("host")
    host = socket_host if isinstance(socket_host, str) else (socket_host[0] if socket_host else None)
    return {
        "TWIN_DBT_HOST": host or url.host or "localhost",
        "TWIN_DBT_PORT": str(url.port or 5432),
        "TWIN_DBT_USER": url.username or "postgres",
        "TWIN_DBT_PASSWORD": url.password or "",
        "TWIN_DBT_DBNAME": url.database or "twin",
        "DO_NOT_TRACK": "1",
    }
