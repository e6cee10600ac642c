"""Where the dbt project is, and the environment its profile reads the platform's database from."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sqlalchemy import make_url

DBT_PROJECT_DIR = Path(os.environ.get("TWIN_DBT_PROJECT_DIR") or Path(__file__).resolve().parents[2] / "dbt")


def ensure_dbt_on_path() -> None:
    """dagster-dbt runs ``dbt`` from PATH; a virtualenv used without activation has it beside python."""
    if shutil.which("dbt") is None and (Path(sys.executable).parent / "dbt").exists():
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def dbt_environment(database_url: str) -> dict[str, str]:
    """``TWIN_DBT_*`` variables for dbt/profiles.yml (a unix-socket host works as well as a TCP one)."""
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
