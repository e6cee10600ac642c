"""What the API's handlers use, opened at start-up and closed at shutdown."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from twin_platform.adapters.llm.factory import build_llm
from twin_platform.adapters.postgres.api_store import ApiKeyStore, QueryLog
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.adapters.tracing import make_tracer
from twin_platform.api.security import KeyVerifier, RateLimiter
from twin_platform.domain.llm import LLMClient
from twin_platform.domain.retrieval import Reranker
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    runtime: Runtime
    pipeline: RAGPipeline
    keys: KeyVerifier
    limiter: RateLimiter
    query_log: QueryLog
    llm: LLMClient | None = None
    llm_error: str | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    def database_ok(self) -> bool:
        try:
            with self.runtime.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def log(self, entry: dict[str, Any]) -> None:
        try:
            self.query_log.write(entry)
        except sa.exc.SQLAlchemyError:
            logger.exception("could not write the query log")

    def close(self) -> None:
        self._stack.close()


def open_services(settings: Settings, llm: LLMClient | None = None, *, load_llm: bool = True) -> Services:
    """Connect to Postgres, load the embedding model, and load the LLM (in the background for the local one)."""
    stack = ExitStack()
    runtime = stack.enter_context(open_runtime(settings))
    embedder = runtime.embedder()
    reranker: Reranker | None = None
    if settings.reranker_model:
        from twin_platform.adapters.reranker import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_model)
    pipeline = RAGPipeline(
        index=runtime.search,
        embedder=embedder,
        authors=runtime.authors.list,
        llm=llm,
        reranker=reranker,
        context_tokens=settings.api_context_tokens,
        max_new_tokens=settings.llm_max_new_tokens,
        tracer=make_tracer(),
    )
    services = Services(
        settings=settings,
        runtime=runtime,
        pipeline=pipeline,
        keys=KeyVerifier(ApiKeyStore(runtime.engine)),
        limiter=RateLimiter(settings.api_rate_limit_per_minute),
        query_log=QueryLog(runtime.engine),
        llm=llm,
        _stack=stack,
    )
    if llm is None and load_llm:
        threading.Thread(target=_load_llm, args=(services,), name="load-llm", daemon=True).start()
    return services


def _load_llm(services: Services) -> None:
    started = time.perf_counter()
    try:
        services.llm = build_llm(services.settings)
    except Exception as exc:
        services.llm_error = f"{type(exc).__name__}: {exc}"
        logger.exception("the LLM could not be loaded")
        return
    services.pipeline.llm = services.llm
    logger.info(
        "LLM %s (%s) ready in %.1f s", services.llm.model_id, services.llm.backend, time.perf_counter() - started
    )
