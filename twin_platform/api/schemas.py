"""Request and response bodies (msgspec structs: validated, unknown fields refused)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from twin_platform.domain.documents import Category, Platform

HARD_QUERY_LIMIT = 10_000  # the configurable limit (TWIN_API_MAX_QUERY_CHARS) is checked too

Query = Annotated[str, Meta(min_length=1, max_length=HARD_QUERY_LIMIT)]
K = Annotated[int, Meta(ge=1, le=50)]


class Filters(Struct, forbid_unknown_fields=True, kw_only=True):
    platforms: list[Platform] = []
    categories: list[Category] = []
    published_after: date | None = None
    published_before: date | None = None


class SearchRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    query: Query
    author: str | None = None
    k: K = 5
    filters: Filters = msgspec.field(default_factory=Filters)


class RagRequest(SearchRequest, forbid_unknown_fields=True, kw_only=True):
    stream: bool = False
    expansions: Annotated[int, Meta(ge=0, le=3)] = 0
    max_tokens: Annotated[int, Meta(ge=1, le=4096)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] = 0.7


class Source(Struct, kw_only=True):
    title: str
    url: str
    platform: str
    category: str
    published_at: str | None
    score: float
    snippet: str
    ranks: dict[str, int]


class SearchResponse(Struct, kw_only=True):
    query: str
    filters: dict[str, object]
    sources: list[Source]
    timings_ms: dict[str, float]


class Usage(Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RagResponse(Struct, kw_only=True):
    answer: str
    sources: list[Source]
    model: str
    usage: Usage
    timings_ms: dict[str, float]
    prompt_version: str
    filters: dict[str, object]


class ChatMessage(Struct, forbid_unknown_fields=True, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Meta(max_length=HARD_QUERY_LIMIT)]
    name: str | None = None


class ChatCompletionRequest(Struct, forbid_unknown_fields=False, kw_only=True):
    """OpenAI's chat.completions body; unknown OpenAI options are accepted and ignored."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=50)]
    model: str = "twin"
    stream: bool = False
    max_tokens: Annotated[int, Meta(ge=1, le=4096)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] = 0.7
    user: str | None = None
