"""What the API holds while it runs: opened at start-up, closed at shutdown, one per worker process.

Handlers never see this object: :mod:`twin_platform.api.dependencies` hands each one the pieces it asks
for. Everything shared between worker processes (keys, rate limits, the query log, the model registry)
lives in Postgres; what is here is per-process caches and connections.

The model that answers can change while the API runs: with the ``local`` backend a :class:`ModelWatcher`
follows the registry's current release (``TWIN_API_SERVE_AUTHOR``'s, else the newest across authors), loads
a new one in the background and swaps it in. A swap replaces one object (:class:`Serving`: the pipeline and
the release it serves), so a request that has begun keeps the pipeline, and model, it started with.

With the ``tgi`` backend the same watcher follows the registry without loading anything: the TGI hosts serve the
release whose S3 pointer the release path writes together with the registry (``adapters.aws_release``), so the
registry's current release names the version that answers. (While an instance refresh rolls a new release out,
hosts not yet replaced still answer with the previous one.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

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
from twin_platform.domain.models import ModelEntry
from twin_platform.domain.retrieval import Reranker
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings

logger = logging.getLogger(__name__)
STATE_KEY = "twin_api"
AUTHORS_TTL_SECONDS = 5.0  # a newly added author is searchable by name within this
# A release that failed to load is tried again after this (an S3 outage passes; a broken model stays broken).
RETRY_FAILED_LOAD_SECONDS = 300.0


@dataclass(frozen=True)
class Serving:
    """What answers, swapped as one: the pipeline (holding the LLM, ``None`` while none is loaded) and the
    registry release that LLM is (``None`` for SmolLM2, ``TWIN_LLM_LOCAL_MODEL_PATH`` and the ``openai``
    backend; for ``tgi``, the registry's current release, which the TGI hosts load)."""

    pipeline: RAGPipeline
    release: ModelEntry | None = None


@dataclass
class ApiState:
    settings: Settings
    runtime: Runtime
    serving: Serving
    keys: KeyVerifier
    limiter: PostgresRateLimiter
    auth_failures: TokenBuckets
    query_log: QueryLogWriter
    authors: Callable[[], list[Author]]
    make_pipeline: Callable[[LLMClient | None], RAGPipeline]
    llm_error: str | None = None
    started_at: int = field(default_factory=lambda: int(time.time()))
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def pipeline(self) -> RAGPipeline:
        return self.serving.pipeline

    @property
    def llm(self) -> LLMClient | None:
        return self.serving.pipeline.llm

    @property
    def release(self) -> ModelEntry | None:
        return self.serving.release

    def serve(self, llm: LLMClient, release: ModelEntry | None = None) -> None:
        """Answer with ``llm`` from now on. One assignment: a request sees the old serving or the new one,
        never half of each; in-flight requests finish on the old model, which is freed after them."""
        self.serving = Serving(self.make_pipeline(llm), release)
        self.llm_error = None

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
    """Connect to Postgres, load the embedding model, and load the LLM in the background: with the ``local``
    backend (and no ``TWIN_LLM_LOCAL_MODEL_PATH``) through a :class:`ModelWatcher` that keeps following the
    registry's current release; otherwise once. A given ``llm`` is served as it is."""
    stack = ExitStack()
    runtime = stack.enter_context(open_runtime(settings))
    reranker: Reranker | None = None
    if settings.reranker_model:
        from twin_platform.adapters.reranker import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_model)
    authors: Callable[[], list[Author]] = cached(
        TTLCache(maxsize=1, ttl=AUTHORS_TTL_SECONDS, timer=clock), lock=threading.Lock()
    )(runtime.authors.list)
    make_pipeline = partial(
        RAGPipeline,
        index=runtime.search,
        embedder=query_embedder(settings),
        authors=authors,
        reranker=reranker,
        llm_self_query=settings.rag_llm_self_query,
        context_tokens=settings.api_context_tokens,
        max_new_tokens=settings.llm_max_new_tokens,
        tracer=make_tracer(),
    )
    writer = QueryLogWriter(QueryLog(runtime.engine).write_many)
    stack.callback(writer.close)
    state = ApiState(
        settings=settings,
        runtime=runtime,
        serving=Serving(make_pipeline(llm=llm)),
        keys=KeyVerifier(ApiKeyStore(runtime.engine), clock=clock),
        limiter=PostgresRateLimiter(runtime.engine, per_minute=settings.api_rate_limit_per_minute),
        auth_failures=TokenBuckets(settings.api_auth_failures_per_minute, clock=clock),
        query_log=writer,
        authors=authors,
        make_pipeline=lambda loaded: make_pipeline(llm=loaded),
        _stack=stack,
    )
    if llm is None and load_llm:
        if settings.llm_backend == "local" and settings.llm_local_model_path is None:
            watcher = ModelWatcher(state)
            watcher.start()
            stack.callback(watcher.stop)  # before the runtime's engine is disposed (the stack unwinds in reverse)
        elif settings.llm_backend == "tgi":
            watcher = ModelWatcher(state, load=_built_once(settings))  # names the release; the client stays
            watcher.start()
            stack.callback(watcher.stop)
        else:
            threading.Thread(target=_load_llm, args=(state,), name="load-llm", daemon=True).start()
    return state


def _built_once(settings: Settings) -> Callable[[ModelEntry | None], LLMClient]:
    """A loader for remote backends: the client is built on first use and the same one serves every release."""
    built: list[LLMClient] = []

    def load(_release: ModelEntry | None) -> LLMClient:
        if not built:
            built.append(build_llm(settings))
        return built[0]

    return load


def _load_llm(state: ApiState) -> None:
    """Load a remote client or the pinned local model, once (nothing in the registry to follow)."""
    started = time.perf_counter()
    try:
        llm = build_llm(state.settings)
    except Exception as exc:
        state.llm_error = f"{type(exc).__name__}: {exc}"
        logger.exception("the LLM could not be loaded")
        return
    state.serve(llm)
    logger.info("LLM %s (%s) ready in %.1f s", llm.model_id, llm.backend, time.perf_counter() - started)


class ModelWatcher:
    """Keeps the ``local`` backend on the registry's current release, without a restart.

    Every ``TWIN_API_MODEL_POLL_SECONDS`` it asks the registry which release is current (one query). When that
    is not the release being served, it loads the new model in its own thread, while the old one goes on
    answering, then swaps it in (:meth:`ApiState.serve`). With nothing released it serves SmolLM2. A model
    that fails to load leaves the old one serving, shows in ``/ready`` as ``llm_error`` and is tried again
    after ``RETRY_FAILED_LOAD_SECONDS``. Each worker process has its own watcher (each loads its own copy).
    """

    def __init__(
        self,
        state: ApiState,
        *,
        load: Callable[[ModelEntry | None], LLMClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.interval = state.settings.api_model_poll_seconds
        self._load = load or partial(build_llm, state.settings)
        self._clock = clock
        self._failed: tuple[str | None, float] | None = None  # (version, when) of the last failed load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)  # a load in progress is not interrupted; the thread is a daemon

    def _run(self) -> None:
        self.check()
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """Serve the current release if it is not served yet; True when a new model was swapped in."""
        try:
            target = self.state.runtime.models.current(self.state.settings.api_serve_author)
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("model registry unavailable, the served model stays: %s", exc)
            return False
        version = target.version if target else None
        served = self.state.release
        if self.state.llm is not None and version == (served.version if served else None):
            if self._failed is not None:  # a failed release was replaced (rolled back): its error is stale
                self._failed = None
                self.state.llm_error = None
            return False
        if self._failed and self._failed[0] == version and self._clock() - self._failed[1] < RETRY_FAILED_LOAD_SECONDS:
            return False
        started = time.perf_counter()
        try:
            llm = self._load(target)
        except Exception as exc:
            self._failed = (version, self._clock())
            self.state.llm_error = f"{target.model_id if target else 'the fallback model'}: {type(exc).__name__}: {exc}"
            logger.exception("the model %s could not be loaded", target.model_id if target else "(fallback)")
            return False
        if self._stop.is_set():
            return False  # shutting down: nothing will answer with it
        self._failed = None
        self.state.serve(llm, target)
        logger.info("LLM %s (%s) serving, loaded in %.1f s", llm.model_id, llm.backend, time.perf_counter() - started)
        return True
