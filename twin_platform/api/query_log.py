"""The query log, kept in one place: every ``/v1`` request leaves one row, whatever its outcome.

:class:`QueryLogMiddleware` wraps each ``/v1`` route outside Litestar's exception handling, so it sees the
status of every answer: 200s, 4xx from validation and guards, 429s, 503s, 500s, and streamed answers once
their last event is sent. Handlers and the error map fill the request's :class:`RequestRecord` (what was
retrieved, generated or refused); the middleware adds status and latency and hands the row to a
:class:`QueryLogWriter`, which inserts in batches on a thread of its own, so logging never adds a
database round trip to a request and a database outage costs log rows, never requests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from twin_platform.domain.llm import Generation
from twin_platform.rag.pipeline import Retrieval
from twin_platform.rag.prompts import PROMPT_VERSION

logger = logging.getLogger(__name__)
RECORD_KEY = "twin.query_log"
ENDPOINTS = {"/v1/search": "search", "/v1/rag": "rag", "/v1/chat/completions": "chat", "/v1/models": "models"}
MAX_QUERY_CHARS = 10_000


@dataclass
class RequestRecord:
    """One query-log row in the making; the columns of ``query_log`` (see ``tables.py``)."""

    endpoint: str
    api_key_name: str | None = None
    author_id: str | None = None
    query: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    model: str | None = None
    model_version: str | None = None  # the registry version of the model that answered (None: search only)
    prompt_version: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def note_query(self, query: str) -> None:
        self.query = query.replace("\x00", "")[:MAX_QUERY_CHARS]  # NULs cannot be stored in Postgres text

    def note_retrieval(self, retrieval: Retrieval, filters: dict[str, Any]) -> None:
        self.author_id = retrieval.filters.author_id
        self.filters = filters
        self.retrieved = [{"chunk_id": h.chunk_id, "score": h.score, "ranks": h.ranks} for h in retrieval.hits]
        self.timings_ms = retrieval.timings_ms
        self.flags = retrieval.injection_flags

    def note_generation(self, generation: Generation, model_version: str | None) -> None:
        self.model = generation.model
        self.model_version = model_version
        self.prompt_version = PROMPT_VERSION
        self.prompt_tokens = generation.prompt_tokens
        self.completion_tokens = generation.completion_tokens

    def note_stream(self, model: str | None, completion_tokens: int, model_version: str | None) -> None:
        self.model = model
        self.model_version = model_version
        self.prompt_version = PROMPT_VERSION
        self.completion_tokens = completion_tokens

    def row(self, status: int, latency_ms: float) -> dict[str, Any]:
        return {**asdict(self), "status": status, "latency_ms": latency_ms}


def record_of(scope: Scope) -> RequestRecord | None:
    """The record of the request in ``scope`` (None outside ``/v1``)."""
    record: RequestRecord | None = scope["state"].get(RECORD_KEY)
    return record


class QueryLogWriter:
    """Inserts rows in batches from a background thread, at most every ``interval`` seconds (one insert and
    one commit per batch, not per request); a failed batch is retried, the oldest rows are dropped (and
    counted) only when ``max_pending`` rows are waiting. ``flush()`` writes what is queued at once."""

    def __init__(
        self,
        write_many: Callable[[list[dict[str, Any]]], None],
        *,
        interval: float = 0.5,
        batch_size: int = 500,
        max_pending: int = 10_000,
        retry_seconds: float = 2.0,
    ) -> None:
        self._write_many = write_many
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._interval = interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._retry_seconds = retry_seconds
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # one writer at a time: the thread or a flush()
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="query-log-writer", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        self._queue.put(row)

    def flush(self) -> bool:
        """Write everything queued now; False when the database refused (the rows stay queued)."""
        with self._lock:
            return self._drain()

    def close(self) -> None:
        self._stop.set()
        self._queue.put({})  # wakes the thread
        self._thread.join(10)
        if not self.flush():
            logger.warning("query log: %d rows could not be written before shutdown", len(self._pending))

    def _drain(self) -> bool:
        while True:
            try:
                while len(self._pending) < self._batch_size:
                    row = self._queue.get_nowait()
                    if row:
                        self._pending.append(row)
            except queue.Empty:
                pass
            if not self._pending:
                return True
            try:
                self._write_many(self._pending)
            except Exception:
                overflow = len(self._pending) - self._max_pending
                if overflow > 0:
                    del self._pending[:overflow]
                    self.dropped += overflow
                logger.warning("query log: could not write %d rows; retrying", len(self._pending), exc_info=True)
                return False
            self._pending = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            if first:
                with self._lock:  # pending, not in hand: a flush() meanwhile writes it too
                    self._pending.append(first)
                self._stop.wait(self._interval)  # let a batch gather
            with self._lock:
                ok = self._drain()
            if not ok:
                self._stop.wait(self._retry_seconds)


class QueryLogMiddleware(ASGIMiddleware):
    """Creates each ``/v1`` request's :class:`RequestRecord` and writes it when the response is complete."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, writer: Callable[[Any], QueryLogWriter | None]) -> None:
        self._writer = writer  # from the app, whose state holds the writer once it has started

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        endpoint = ENDPOINTS.get(scope["path"].rstrip("/"))
        writer = self._writer(scope["app"])
        if endpoint is None or writer is None:
            await next_app(scope, receive, send)
            return
        record = RequestRecord(endpoint=endpoint)
        scope["state"][RECORD_KEY] = record
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, capture)
        finally:
            writer.add(record.row(status, (time.perf_counter() - started) * 1000))
