"""What the API holds while it runs: opened at start-up, closed at shutdown, one per worker process.

Handlers never see this object: :mod:`twin_platform.api.dependencies` hands each one the pieces it asks
for. Everything shared between worker processes (keys, rate limits, the query log, the model registry)
lives in Postgres; what is here is per-process caches and connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import sqlalchemy as sa
from cachetools import TTLCache, cached
from litestar import Litestar

from twin_platform.adapters.llm.factory import build_llm
from twin_platform.adapters.postgres.api_store import ApiKeyStore, PostgresRateLimiter, QueryLog
from twin_platform.adapters.query_encoder import query_embedder
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.adapters.tracing import make_tracer
from twin_platform.api.query_log import QueryLogWriter
from twin_platform.api.security import KeyVerifier, TokenBuckets
from twin_platform.domain.authors import Author
from twin_platform.domain.llm import LLMClient
from twin_platform.domain.retrieval import Reranker
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings

logger = logging.getLogger(__name__)
STATE_KEY = "twin_api"
AUTHORS_TTL_SECONDS = 5.0  # a newly added author is searchable by name within this


@dataclass
class ApiState:
    settings: Settings
    runtime: Runtime
    pipeline: RAGPipeline
    keys: KeyVerifier
    limiter: PostgresRateLimiter
    auth_failures: TokenBuckets
    query_log: QueryLogWriter
    authors: Callable[[], list[Author]]
    llm: LLMClient | None = None
    llm_error: str | None = None
    started_at: int = field(default_factory=lambda: int(time.time()))
    _stack: ExitStack = field(default_factory=ExitStack)

    def database_ok(self) -> bool:
        try:
            with self.runtime.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        self._stack.close()


def state_of(app: Litestar) -> ApiState:
    state: ApiState = app.state[STATE_KEY]
    return state


def open_state(
    settings: Settings,
    llm: LLMClient | None = None,
    *,
    load_llm: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> ApiState:
    """Connect to Postgres, load the embedding model, and load the LLM (in the background for the local one)."""
    stack = ExitStack()
    runtime = stack.enter_context(open_runtime(settings))
    reranker: Reranker | None = None
    if settings.reranker_model:
        from twin_platform.adapters.reranker import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_model)
    authors: Callable[[], list[Author]] = cached(
        TTLCache(maxsize=1, ttl=AUTHORS_TTL_SECONDS, timer=clock), lock=threading.Lock()
    )(runtime.authors.list)
    pipeline = RAGPipeline(
        index=runtime.search,
        embedder=query_embedder(settings),
        authors=authors,
        llm=llm,
        reranker=reranker,
        context_tokens=settings.api_context_tokens,
        max_new_tokens=settings.llm_max_new_tokens,
        tracer=make_tracer(),
    )
    writer = QueryLogWriter(QueryLog(runtime.engine).write_many)
    stack.callback(writer.close)
    state = ApiState(
        settings=settings,
        runtime=runtime,
        pipeline=pipeline,
        keys=KeyVerifier(ApiKeyStore(runtime.engine), clock=clock),
        limiter=PostgresRateLimiter(runtime.engine, per_minute=settings.api_rate_limit_per_minute),
        auth_failures=TokenBuckets(settings.api_auth_failures_per_minute, clock=clock),
        query_log=writer,
        authors=authors,
        llm=llm,
        _stack=stack,
    )
    if llm is None and load_llm:
        threading.Thread(target=_load_llm, args=(state,), name="load-llm", daemon=True).start()
    return state


def _load_llm(state: ApiState) -> None:
    started = time.perf_counter()
    try:
        llm = build_llm(state.settings)
    except Exception as exc:
        state.llm_error = f"{type(exc).__name__}: {exc}"
        logger.exception("the LLM could not be loaded")
        return
    state.llm = state.pipeline.llm = llm
    logger.info("LLM %s (%s) ready in %.1f s", llm.model_id, llm.backend, time.perf_counter() - started)
