"""``twin materialize``: run assets headless, recorded in the same Dagster instance as the UI.

SIGINT (Ctrl-C) and SIGTERM stop the command: the run in progress fails, no further run starts, and
it exits with 128 + the signal's number. An embedded Postgres this command had to start is stopped when
it exits, as after every one-shot command (``twin_platform.cli.lifecycle``).
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import typer

from twin_platform.cli.authors import AUTHOR_HELP, resolve_author
from twin_platform.cli.console import fail, literal, out
from twin_platform.cli.instance import add_author_partitions, get_instance
from twin_platform.settings import Settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
INVOCATION_TAG = "twin/materialize"  # the runs one command started, to fail one a signal left unstarted


class StopSignals:
    """Catches SIGINT and SIGTERM for the whole command and remembers the first one.

    Outside a run the handler raises KeyboardInterrupt to stop at once. Inside one, Dagster installs
    its own handlers: the signal fails the run's current step and ``dg.materialize`` returns as if the
    run had just failed, so no handler of ours sees it. The interpreter still writes every caught
    signal's number to the wakeup fd, whichever handler runs, so :meth:`received` knows either way.
    """

    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous_handlers: dict[int, Handler] = {}
        self._previous_fd = -1

    def __enter__(self) -> StopSignals:
        self._reader, self._writer = socket.socketpair()
        for sock in (self._reader, self._writer):
            sock.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        # One handler for both: when a run ends, Dagster restores SIGINT's handler and copies it to SIGTERM.
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._interrupt)
        return self

    @staticmethod
    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    @staticmethod
    def _note(_signum: int, _frame: FrameType | None) -> None:
        """Only recorded (by the wakeup fd): a second signal must not cut the wind-down short."""

    def received(self) -> int | None:
        """The first stop signal received so far, if any; after one, further ones are only recorded."""
        if self._signum is None:
            try:
                data = self._reader.recv(4096)
            except BlockingIOError:  # nothing written: no signal since the last look
                data = b""
            self._signum = next((n for n in data if n in STOP_SIGNALS), None)
        if self._signum is not None:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._note)
        return self._signum

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous_handlers.items():
            if handler is not None:  # None: installed outside Python, nothing to restore
                signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


def materialize_assets(
    select: str | None, authors: list[str], settings: Settings, stop: StopSignals | None = None
) -> bool:
    """Materialize ``select`` (Dagster selection syntax; everything by default).

    Per-author assets run once per author partition; the rest (the dbt marts) run once afterwards.
    ``authors`` are registered authors' names, aliases or ids (every one by default).
    No run starts after ``stop`` (when given) has received a signal.
    """
    import dagster as dg

    from twin_platform.definitions import defs
    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION

    # Definitions modules may re-export an asset; materialize each once.
    assets = [a for a in {id(a): a for a in defs.assets or []}.values() if isinstance(a, dg.AssetsDefinition)]
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
    try:
        keys = selection.resolve(graph)
    except dg.DagsterInvalidSubsetError as exc:
        raise fail(f"--select {select!r} matches no asset: {exc}") from None
    if not keys:
        raise fail(f"--select {select!r} matches no asset")
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    unpartitioned = set(keys) - partitioned
    if authors:
        from twin_platform.adapters.runtime import open_runtime

        with open_runtime(settings) as runtime:
            authors = list(dict.fromkeys(resolve_author(runtime.authors, name).id for name in authors))
        add_author_partitions(settings, authors)  # registered authors are partitions (also of a new instance)
    with get_instance(settings) as instance:
        known = instance.get_dynamic_partitions(AUTHORS_PARTITION)
        partitions = authors or known
        if partitioned and not partitions:
            raise fail("no authors are registered: run `twin demo` or `twin authors add NAME` first")
        runs: list[tuple[str, set[dg.AssetKey], str | None]] = []
        if partitioned:
            runs += [(author, partitioned, author) for author in partitions]
        if unpartitioned:
            runs.append(("marts", unpartitioned, None))
        invocation = uuid.uuid4().hex
        ok = True
        try:
            for label, run_keys, partition in runs:
                if stop is not None and stop.received():
                    break
                result = dg.materialize(
                    assets,
                    instance=instance,
                    resources=defs.resources,
                    partition_key=partition,
                    selection=dg.AssetSelection.assets(*run_keys),
                    raise_on_error=False,
                    tags={INVOCATION_TAG: invocation, **({"twin/author": partition} if partition else {})},
                )
                status = ("succeeded", "green") if result.success else ("failed", "red")
                out.print(literal("run ", result.run_id, " for ", label, ": ", status))
                ok = ok and result.success
        except KeyboardInterrupt:
            # Raised by StopSignals between Dagster's own handlers: a run created in that gap never starts.
            unstarted = dg.RunsFilter(tags={INVOCATION_TAG: invocation}, statuses=[dg.DagsterRunStatus.NOT_STARTED])
            for run in instance.get_runs(filters=unstarted):
                instance.report_run_failed(run, "twin materialize was interrupted before this run started")
            raise
        return ok


def materialize_command(
    select: str | None = typer.Option(
        None, "--select", help="Asset selection, e.g. 'raw_documents' or 'key:raw_documents+' (default: all)."
    ),
    author: list[str] = typer.Option(
        [], "--author", help=f"Only these authors ({AUTHOR_HELP}; repeatable); default: every author."
    ),
) -> None:
    """Materialize assets without the UI; exits 1 if a run fails, 128 + N when stopped by signal N."""
    with StopSignals() as stop:
        try:
            ok = materialize_assets(select, author, Settings(), stop)
        except KeyboardInterrupt:
            ok = False
        signum = stop.received()
        if signum is not None:
            raise fail(f"interrupted by {signal.Signals(signum).name}; no further run was started", 128 + signum)
    if not ok:
        raise typer.Exit(1)
