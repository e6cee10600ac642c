"""The Litestar application: ``create_app()``; ``twin api`` serves it with uvicorn."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import JSONBody
from litestar.response import Response, ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from twin_platform.api.problems import EXCEPTION_HANDLERS, PROBLEM
from twin_platform.api.schemas import (
    ChatCompletionRequest,
    Filters,
    RagRequest,
    RagResponse,
    SearchRequest,
    SearchResponse,
    Source,
    Usage,
)
from twin_platform.api.security import is_loopback
from twin_platform.api.services import Services, open_services
from twin_platform.domain.llm import Generation, LLMUnavailable, Message
from twin_platform.domain.retrieval import ScoredChunk, SearchFilters
from twin_platform.rag.pipeline import RAGRequest, Retrieval
from twin_platform.rag.prompts import PROMPT_VERSION
from twin_platform.settings import Settings

SNIPPET_CHARS = 300


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state["services"]
    return services


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; then the key's rate limit."""
    services = services_of(connection)
    if services.settings.api_auth_disabled:
        name = "anonymous"
    else:
        header = connection.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else connection.headers.get("x-api-key", "")
        found = services.keys.name_for(key) if key else None
        if found is None:
            raise NotAuthorizedException(
                detail="a valid API key is required (Authorization: Bearer <key>); create one: twin apikey create NAME",
                headers={"WWW-Authenticate": "Bearer"},
            )
        name = found
    wait = services.limiter.acquire(name)
    if wait > 0:
        raise TooManyRequestsException(
            detail=f"rate limit of {services.settings.api_rate_limit_per_minute} requests per minute exceeded",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    connection.scope["state"]["api_key_name"] = name


def _filters(services: Services, request: SearchRequest) -> SearchFilters:
    limit = services.settings.api_max_query_chars
    if len(request.query) > limit:
        raise ValidationException(
            detail="query is too long", extra=[{"key": "query", "message": f"Expected `str` of length <= {limit}"}]
        )
    if not request.query.strip():
        raise ValidationException(detail="query is empty", extra=[{"key": "query", "message": "must not be blank"}])
    author_id = None
    if request.author:
        author = services.runtime.authors.find_by_name(request.author)
        if author is None:
            raise ValidationException(
                detail="unknown author",
                extra=[{"key": "author", "message": f"no registered author is called {request.author!r}"}],
            )
        author_id = author.id
    f: Filters = request.filters

    def day(value: Any) -> datetime | None:
        return datetime(value.year, value.month, value.day, tzinfo=UTC) if value else None

    return SearchFilters(
        author_id=author_id,
        platforms=tuple(f.platforms),
        categories=tuple(f.categories),
        published_after=day(f.published_after),
        published_before=day(f.published_before),
    )


def _sources(hits: list[ScoredChunk]) -> list[Source]:
    return [
        Source(
            title=h.title,
            url=h.source_url,
            platform=h.platform.value,
            category=h.category.value,
            published_at=h.published_at.isoformat() if h.published_at else None,
            score=round(h.score, 6),
            snippet=" ".join(h.text.split())[:SNIPPET_CHARS],
            ranks=h.ranks,
        )
        for h in hits
    ]


def _filters_json(filters: SearchFilters) -> dict[str, object]:
    return {
        "author": filters.author_id,
        "platforms": [p.value for p in filters.platforms],
        "categories": [c.value for c in filters.categories],
        "published_after": filters.published_after.isoformat() if filters.published_after else None,
        "published_before": filters.published_before.isoformat() if filters.published_before else None,
    }


def _log_entry(
    endpoint: str,
    request: Request[Any, Any, Any],
    query: str,
    retrieval: Retrieval | None,
    started: float,
    status: int,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "api_key_name": request.scope["state"].get("api_key_name"),
        "author_id": retrieval.filters.author_id if retrieval else None,
        "query": query[:10_000],
        "filters": _filters_json(retrieval.filters) if retrieval else {},
        "retrieved": [{"chunk_id": h.chunk_id, "score": h.score, "ranks": h.ranks} for h in retrieval.hits]
        if retrieval
        else [],
        "timings_ms": retrieval.timings_ms if retrieval else {},
        "latency_ms": (time.perf_counter() - started) * 1000,
        "status": status,
        "flags": retrieval.injection_flags if retrieval else [],
        **extra,
    }


def _generation_fields(generation: Generation) -> dict[str, Any]:
    return {
        "model": generation.model,
        "prompt_version": PROMPT_VERSION,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
    }


def _retrieve(services: Services, body: SearchRequest, expansions: int = 0) -> Retrieval:
    filters = _filters(services, body)
    return services.pipeline.retrieve(
        RAGRequest(query=body.query, author_id=filters.author_id, k=body.k, filters=filters, expansions=expansions)
    )


@post("/v1/search", guards=[require_api_key], sync_to_thread=True, status_code=200)
def search(request: Request[Any, Any, Any], data: JSONBody[SearchRequest]) -> SearchResponse:
    """Retrieval only: self-query, filtered hybrid search (pgvector + full text, RRF), dedupe, rerank."""
    services = services_of(request)
    started = time.perf_counter()
    retrieval = _retrieve(services, data)
    services.log(_log_entry("search", request, data.query, retrieval, started, 200))
    return SearchResponse(
        query=data.query,
        filters=_filters_json(retrieval.filters),
        sources=_sources(retrieval.hits),
        timings_ms=retrieval.timings_ms,
    )


def _require_llm(services: Services) -> None:
    if services.llm is None:
        reason = services.llm_error or "the model is still loading"
        raise LLMUnavailable(f"no LLM is available: {reason}")


@post("/v1/rag", guards=[require_api_key], sync_to_thread=True, status_code=200)
def rag(request: Request[Any, Any, Any], data: JSONBody[RagRequest]) -> Response[Any]:
    """Answer in the author's voice from their retrieved writing; ``stream: true`` sends server-sent events."""
    services = services_of(request)
    started = time.perf_counter()
    _require_llm(services)
    retrieval = _retrieve(services, data, data.expansions)
    params = services.pipeline.params(data.max_tokens, data.temperature)
    request_ = RAGRequest(query=data.query, author_id=retrieval.filters.author_id, k=data.k)
    if data.stream:
        context, pieces = services.pipeline.stream(request_, retrieval, params)
        return ServerSentEvent(_sse(services, request, data.query, retrieval, context.sources, pieces, started))
    try:
        answer = services.pipeline.answer(request_, retrieval, params)
    except LLMUnavailable as exc:
        services.log(_log_entry("rag", request, data.query, retrieval, started, 503, error=str(exc)))
        raise
    generation = answer.generation
    services.log(
        _log_entry(
            "rag",
            request,
            data.query,
            retrieval,
            started,
            200,
            **_generation_fields(generation),
        )
    )
    return Response(
        RagResponse(
            answer=answer.text,
            sources=_sources(answer.context.sources),
            model=generation.model,
            usage=Usage(
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                total_tokens=generation.prompt_tokens + generation.completion_tokens,
            ),
            timings_ms=retrieval.timings_ms,
            prompt_version=PROMPT_VERSION,
            filters=_filters_json(retrieval.filters),
        )
    )


def _sse(
    services: Services,
    request: Request[Any, Any, Any],
    query: str,
    retrieval: Retrieval,
    sources: list[ScoredChunk],
    pieces: Iterator[str],
    started: float,
) -> Iterator[ServerSentEventMessage]:
    status, error, count = 200, None, 0
    generation_started = time.perf_counter()
    try:
        for piece in pieces:
            count += 1
            yield ServerSentEventMessage(data=json.dumps({"token": piece}), event="token")
        retrieval.timings_ms["generation"] = round((time.perf_counter() - generation_started) * 1000, 2)
        yield ServerSentEventMessage(
            event="sources",
            data=json.dumps(
                {
                    "sources": msgspec.to_builtins(_sources(sources)),
                    "timings_ms": retrieval.timings_ms,
                    "model": services.llm.model_id if services.llm else None,
                    "prompt_version": PROMPT_VERSION,
                }
            ),
        )
    except LLMUnavailable as exc:
        status, error = 503, str(exc)
        yield ServerSentEventMessage(event="error", data=json.dumps({"status": 503, "detail": str(exc)}))
    finally:
        services.log(
            _log_entry(
                "rag",
                request,
                query,
                retrieval,
                started,
                status,
                error=error,
                model=services.llm.model_id if services.llm else None,
                prompt_version=PROMPT_VERSION,
                completion_tokens=count,
            )
        )


@post("/v1/chat/completions", guards=[require_api_key], sync_to_thread=True, status_code=200)
def chat_completions(request: Request[Any, Any, Any], data: JSONBody[ChatCompletionRequest]) -> Response[Any]:
    """OpenAI-compatible chat with the twin: RAG on the last user message, earlier turns as history."""
    services = services_of(request)
    started = time.perf_counter()
    users = [i for i, m in enumerate(data.messages) if m.role == "user"]
    if not users:
        raise ValidationException(
            detail="no user message",
            extra=[{"key": "messages", "message": "at least one message must have role 'user'"}],
        )
    last = users[-1]
    query = data.messages[last].content
    _require_llm(services)
    retrieval = _retrieve(services, SearchRequest(query=query, k=5))
    history = tuple(Message(m.role, m.content) for m in data.messages[:last] if m.role != "system")
    params = services.pipeline.params(data.max_tokens, data.temperature)
    request_ = RAGRequest(query=query, author_id=retrieval.filters.author_id, history=history)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = services.llm.model_id if services.llm else data.model
    if data.stream:
        _, pieces = services.pipeline.stream(request_, retrieval, params)
        return ServerSentEvent(_openai_chunks(completion_id, created, model, pieces))
    answer = services.pipeline.answer(request_, retrieval, params)
    g = answer.generation
    services.log(
        _log_entry(
            "chat",
            request,
            query,
            retrieval,
            started,
            200,
            **_generation_fields(g),
        )
    )
    return Response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": g.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": g.finish_reason}
            ],
            "usage": {
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "total_tokens": g.prompt_tokens + g.completion_tokens,
            },
            "sources": [{"title": s.title, "url": s.url} for s in _sources(answer.context.sources)],
        }
    )


def _openai_chunks(completion_id: str, created: int, model: str, pieces: Iterator[str]) -> Iterator[str]:
    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    yield chunk({"role": "assistant"})
    for piece in pieces:
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    yield "[DONE]"


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/ready", sync_to_thread=True)
def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: the database answers and the LLM is loaded and reachable."""
    services = services_of(request)
    database = services.database_ok()
    llm = services.llm is not None and services.llm.health()
    body = {
        "database": database,
        "llm": llm,
        "llm_backend": services.settings.llm_backend,
        "llm_error": services.llm_error,
    }
    if database and llm:
        return Response({"status": "ready", **body})
    return Response(
        {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "not ready", **body},
        status_code=503,
        media_type=PROBLEM,
    )


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """The API. Without ``services`` it connects at start-up and loads the models then."""
    settings = settings or (services.settings if services else Settings())
    if settings.api_auth_disabled and not is_loopback(settings.api_host):
        raise ValueError(
            "TWIN_API_AUTH_DISABLED is allowed only when the API binds to loopback "
            f"(TWIN_API_HOST is {settings.api_host})"
        )
    state: dict[str, Any] = {}

    def startup(app: Litestar) -> None:
        app.state["services"] = services or open_services(settings)

    def shutdown(app: Litestar) -> None:
        if services is None and "services" in app.state:
            app.state["services"].close()

    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    return Litestar(
        route_handlers=[search, rag, chat_completions, health, ready],
        on_startup=[startup],
        on_shutdown=[shutdown],
        state=State(state),
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.api_max_body_bytes,
        cors_config=CORSConfig(allow_origins=origins) if origins else None,
        openapi_config=OpenAPIConfig(
            title="twin_platform RAG API",
            version="0.1.0",
            description="Query an author's twin: retrieval over everything they wrote, answers in their voice.",
            components=Components(security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"apiKey": []}],
        ),
    )
