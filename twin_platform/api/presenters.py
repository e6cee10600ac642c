"""From the RAG pipeline's results to response bodies (and the query log's view of them)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec
from litestar.response.sse import ServerSentEventMessage

from twin_platform.api.query_log import RequestRecord
from twin_platform.api.schemas import (
    AppliedFilters,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    RagResponse,
    SearchResponse,
    Source,
    SourceLink,
    Usage,
)
from twin_platform.domain.llm import Generation, LLMUnavailable
from twin_platform.domain.retrieval import ScoredChunk, SearchFilters
from twin_platform.rag.pipeline import Answer, Retrieval
from twin_platform.rag.prompts import PROMPT_VERSION, citations

SNIPPET_CHARS = 300


def sources(hits: list[ScoredChunk]) -> list[Source]:
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


def applied_filters(filters: SearchFilters) -> AppliedFilters:
    return AppliedFilters(
        author=filters.author_id,
        platforms=[p.value for p in filters.platforms],
        categories=[c.value for c in filters.categories],
        published_after=filters.published_after.isoformat() if filters.published_after else None,
        published_before=filters.published_before.isoformat() if filters.published_before else None,
    )


def usage(generation: Generation) -> Usage:
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )


def note_retrieval(record: RequestRecord, retrieval: Retrieval) -> None:
    record.note_retrieval(retrieval, msgspec.to_builtins(applied_filters(retrieval.filters)))


def search_response(query: str, retrieval: Retrieval) -> SearchResponse:
    return SearchResponse(
        query=query,
        filters=applied_filters(retrieval.filters),
        sources=sources(retrieval.hits),
        timings_ms=retrieval.timings_ms,
        flags=retrieval.injection_flags,
    )


def rag_response(answer: Answer, model_version: str | None) -> RagResponse:
    generation = answer.generation
    return RagResponse(
        answer=answer.text,
        sources=sources(answer.context.sources),
        citations=answer.citations,
        model=generation.model,
        model_version=model_version,
        usage=usage(generation),
        timings_ms=answer.retrieval.timings_ms,
        prompt_version=PROMPT_VERSION,
        filters=applied_filters(answer.retrieval.filters),
        flags=answer.retrieval.injection_flags,
    )


def chat_completion(completion_id: str, created: int, answer: Answer, model_version: str | None) -> ChatCompletion:
    g = answer.generation
    return ChatCompletion(
        id=completion_id,
        object="chat.completion",
        created=created,
        model=g.model,
        model_version=model_version,
        choices=[
            ChatChoice(
                index=0, message=AssistantMessage(role="assistant", content=g.text), finish_reason=g.finish_reason
            )
        ],
        usage=usage(g),
        sources=[SourceLink(title=s.title, url=s.url) for s in sources(answer.context.sources)],
        flags=answer.retrieval.injection_flags,
    )


def new_completion_id() -> tuple[str, int]:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())


@dataclass
class TokenStream:
    """Counts what a generator streams and notes it in the query log record when the stream ends."""

    pieces: Iterator[str]
    record: RequestRecord
    model: str | None
    model_version: str | None
    count: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self.pieces:
                self.count += 1
                yield piece
        finally:
            self.record.note_stream(self.model, self.count, self.model_version)


def rag_events(stream: TokenStream, retrieval: Retrieval, hits: list[ScoredChunk]) -> Iterator[ServerSentEventMessage]:
    """``token`` events, then one ``sources`` event; an ``error`` event when the model fails mid-answer."""
    text: list[str] = []
    try:
        for piece in stream:
            text.append(piece)
            yield ServerSentEventMessage(data=json.dumps({"token": piece}), event="token")
        retrieval.timings_ms["generation"] = round((time.perf_counter() - stream.started) * 1000, 2)
        yield ServerSentEventMessage(
            event="sources",
            data=json.dumps(
                {
                    "sources": msgspec.to_builtins(sources(hits)),
                    "citations": citations("".join(text), len(hits)),
                    "timings_ms": retrieval.timings_ms,
                    "model": stream.model,
                    "model_version": stream.model_version,
                    "prompt_version": PROMPT_VERSION,
                    "flags": retrieval.injection_flags,
                }
            ),
        )
    except LLMUnavailable as exc:
        stream.record.error = str(exc)
        yield ServerSentEventMessage(event="error", data=json.dumps({"status": 503, "detail": str(exc)}))


def chat_chunks(completion_id: str, created: int, stream: TokenStream) -> Iterator[str]:
    """OpenAI's ``chat.completion.chunk`` events, then ``[DONE]``."""

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": stream.model,
                "model_version": stream.model_version,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    yield chunk({"role": "assistant"})
    try:
        for piece in stream:
            yield chunk({"content": piece})
    except LLMUnavailable as exc:
        stream.record.error = str(exc)
        yield json.dumps({"error": {"message": str(exc), "type": "service_unavailable", "code": 503}})
        return
    yield chunk({}, "stop")
    yield "[DONE]"
