"""Request and response bodies: msgspec structs, decoded strictly (``"k": "5"`` is not a number), unknown
fields refused except where OpenAI's API has options the twin ignores. They are also the OpenAPI schema."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from twin_platform.domain.documents import Category, Platform

HARD_QUERY_LIMIT = 10_000  # the configurable limit (TWIN_API_MAX_QUERY_CHARS) is checked too
# Postgres text cannot hold NUL; refusing it here makes it a 400 that names the field, not a 500.
NO_NUL = "^[^\x00]*$"

Query = Annotated[str, Meta(min_length=1, max_length=HARD_QUERY_LIMIT, pattern=NO_NUL)]
Name = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
K = Annotated[int, Meta(ge=1, le=50)]
MaxTokens = Annotated[int, Meta(ge=1, le=4096)]
Temperature = Annotated[float, Meta(ge=0, le=2)]


class Filters(Struct, forbid_unknown_fields=True, kw_only=True):
    platforms: list[Platform] = []
    categories: list[Category] = []
    published_after: date | None = None
    published_before: date | None = None

    def __post_init__(self) -> None:
        if self.published_after and self.published_before and self.published_after > self.published_before:
            # "name: message" lets the error handler name the field inside this struct.
            raise ValueError(
                f"published_after: {self.published_after} is later than published_before ({self.published_before})"
            )


class SearchRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    query: Query
    author: Name | None = None
    k: K = 5
    filters: Filters = msgspec.field(default_factory=Filters)


class RagRequest(SearchRequest, forbid_unknown_fields=True, kw_only=True):
    stream: bool = False
    expansions: Annotated[int, Meta(ge=0, le=3)] = 0
    max_tokens: MaxTokens | None = None
    temperature: Temperature = 0.7


class AppliedFilters(Struct, kw_only=True):
    """The filters the search ran with: the request's, completed by what the question itself said."""

    author: str | None
    platforms: list[str]
    categories: list[str]
    published_after: str | None
    published_before: str | None


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
    filters: AppliedFilters
    sources: list[Source]
    timings_ms: dict[str, float]
    flags: list[str]  # prompt-injection patterns found in the query (flagged, not refused)


class Usage(Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RagResponse(Struct, kw_only=True):
    answer: str  # cites its sources inline: [n] is sources[n - 1]
    sources: list[Source]
    citations: list[int]  # the source numbers the answer cites, in order of first citation
    model: str
    model_version: str | None  # the model registry's version of the twin that answered; null for other models
    usage: Usage
    timings_ms: dict[str, float]
    prompt_version: str
    filters: AppliedFilters
    flags: list[str]


class ChatMessage(Struct, forbid_unknown_fields=True, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Meta(max_length=HARD_QUERY_LIMIT, pattern=NO_NUL)]
    name: Name | None = None


class ChatCompletionRequest(Struct, forbid_unknown_fields=False, kw_only=True):
    """OpenAI's chat.completions body; unknown OpenAI options are accepted and ignored."""

    messages: Annotated[list[ChatMessage], Meta(min_length=1, max_length=50)]
    model: Name = "twin"
    stream: bool = False
    max_tokens: MaxTokens | None = None
    temperature: Temperature = 0.7
    user: Name | None = None


class AssistantMessage(Struct, kw_only=True):
    role: Literal["assistant"]
    content: str


class ChatChoice(Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: str


class SourceLink(Struct, kw_only=True):
    title: str
    url: str


class ChatCompletion(Struct, kw_only=True):
    """OpenAI's ``chat.completion`` object, plus the twin's ``model_version``, ``sources`` and injection ``flags``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    model_version: str | None  # the model registry's version of the twin that answered; null for other models
    choices: list[ChatChoice]
    usage: Usage
    sources: list[SourceLink]
    flags: list[str]


class Model(Struct, kw_only=True):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Struct, kw_only=True):
    """OpenAI's ``GET /v1/models`` answer: the twin's model, whatever serves it."""

    object: Literal["list"]
    data: list[Model]


class Health(Struct, kw_only=True):
    status: str


class Readiness(Struct, kw_only=True):
    status: Literal["ready", "not ready"]
    database: bool
    llm: bool
    llm_backend: str
    llm_error: str | None


class FieldError(Struct, kw_only=True):
    field: str
    message: str


class Problem(Struct, kw_only=True):
    """RFC 9457 problem details, the body of every error (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None
