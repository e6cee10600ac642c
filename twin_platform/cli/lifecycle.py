"""One-shot commands leave the embedded Postgres as they found it.

A command that finds the server stopped and has to start it (``twin import``, ``twin materialize``,
``twin apikey create``, ...) stops it again when it exits, also after an error, Ctrl-C or SIGTERM (exit
143). Left alone: a server that was already running (``twin up``, ``twin api``, ``twin db start`` or
another command started it), and one that other clients connected to meanwhile (then the command says
that it stays up and how to stop it). Long-running commands (``twin up``, ``twin api``) and the commands
whose point is a running server (``twin db start``, ``twin db url``) keep it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from types import FrameType

import typer

from twin_platform.adapters.postgres.embedded import EmbeddedPostgres
from twin_platform.cli.console import err, literal
from twin_platform.settings import Settings

KEEPS_SERVER = frozenset({"up", "api"})  # long-running: they own the server's lifetime themselves

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedScope:
    """The embedded server as one command invocation found it."""

    server: EmbeddedPostgres
    was_running: bool
    keep: bool = False
    restore_sigterm: bool = False
    # libpq's PGAPPNAME while the command runs: its own connections (a pool still open when a signal ends it)
    # are not "others" keeping the server up. ``None``: count every connection.
    application_name: str | None = None
    previous_application_name: str | None = None

    def close(self) -> None:
        """Stop the server if this command started it and nobody else uses it."""
        global _current  # noqa: PLW0603
        if _current is self:
            _current = None
        try:
            self._stop_if_started_here()
        finally:
            if self.restore_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if self.application_name is not None:
                if self.previous_application_name is None:
                    os.environ.pop("PGAPPNAME", None)
                else:
                    os.environ["PGAPPNAME"] = self.previous_application_name

    def _stop_if_started_here(self) -> None:
        if self.keep or self.was_running or not self.server.status().running:
            return
        others = self.server.other_connections(exclude_application=self.application_name)
        if others:
            err.print(
                literal(
                    "note: the embedded Postgres this command started stays up: ",
                    f"{others} other connection(s) use it. Stop it with `twin db stop` (data dir ",
                    self.server.pgdata.parent,
                    ").",
                )
            )
            return
        self.server.stop()
        logger.info("stopped the embedded Postgres this command started (%s)", self.server.pgdata)


_current: EmbeddedScope | None = None  # the running command's (one command per process, or per CliRunner call)


def track_embedded_server(ctx: typer.Context) -> None:
    """Called by the ``twin`` callback: remember whether the embedded server runs, and on exit stop it if this
    command started it. Nothing to do with an external server (``TWIN_DATABASE_URL``)."""
    global _current  # noqa: PLW0603
    _current = None
    if ctx.invoked_subcommand in KEEPS_SERVER or ctx.resilient_parsing:
        return
    try:
        settings = Settings()
    except ValueError:  # invalid settings: the command itself reports them
        return
    if settings.database_url is not None:
        return
    server = EmbeddedPostgres(settings.data_location[0] / "pgdata")
    application_name = f"twin-cli-{os.getpid()}"
    _current = EmbeddedScope(
        server,
        was_running=server.status().running,
        application_name=application_name,
        previous_application_name=os.environ.get("PGAPPNAME"),
    )
    os.environ["PGAPPNAME"] = application_name
    # SIGTERM (kill, a supervisor) ends the command like Ctrl-C does, through the close below, not at once.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _current.restore_sigterm = True
    ctx.call_on_close(_current.close)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def keep_embedded_server() -> None:
    """The running command wants the embedded server to stay up after it exits (``twin db start``, ``db url``)."""
    if _current is not None:
        _current.keep = True
