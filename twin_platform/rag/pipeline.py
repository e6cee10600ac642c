"""The RAG pipeline: self-query -> expansion -> filtered hybrid search -> fusion -> dedupe -> rerank ->
context within a token budget -> versioned prompt -> generation. Each step is timed (and traced)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from twin_platform.domain.authors import Author
from twin_platform.domain.features import Embedder
from twin_platform.domain.llm import Generation, GenerationParams, LLMClient, LLMUnavailable, Message
from twin_platform.domain.retrieval import Reranker, ScoredChunk, SearchFilters, SearchIndex, reciprocal_rank_fusion
from twin_platform.rag.expansion import expand_query
from twin_platform.rag.prompts import PROMPT_VERSION, Context, assemble_context, rag_messages
from twin_platform.rag.ranking import deduplicate, rerank
from twin_platform.rag.screening import injection_flags
from twin_platform.rag.search import hybrid_search
from twin_platform.rag.self_query import self_query

F = TypeVar("F", bound=Callable[..., Any])
Tracer = Callable[[str], Callable[[F], F]]


def no_tracing(name: str) -> Callable[[F], F]:
    return lambda fn: fn


@dataclass(frozen=True)
class RAGRequest:
    query: str
    author_id: str | None = None
    k: int = 5
    filters: SearchFilters = field(default_factory=SearchFilters)
    expansions: int = 0
    history: tuple[Message, ...] = ()


@dataclass
class Retrieval:
    hits: list[ScoredChunk]
    filters: SearchFilters
    self_query_method: str
    queries: list[str]
    injection_flags: list[str]
    timings_ms: dict[str, float]
    author_name: str | None = None  # of the author the filters settled on, for the prompt


@dataclass
class Answer:
    text: str
    retrieval: Retrieval
    context: Context
    generation: Generation
    prompt_version: str = PROMPT_VERSION

    @property
    def citations(self) -> list[int]:
        """The source numbers the answer cites inline; ``[n]`` is ``context.sources[n - 1]``."""
        return self.context.cited(self.text)


def merge_filters(explicit: SearchFilters, inferred: SearchFilters) -> SearchFilters:
    """What the request says wins; the question fills in the rest."""
    return SearchFilters(
        author_id=explicit.author_id or inferred.author_id,
        platforms=explicit.platforms or inferred.platforms,
        categories=explicit.categories or inferred.categories,
        published_after=explicit.published_after or inferred.published_after,
        published_before=explicit.published_before or inferred.published_before,
    )


class RAGPipeline:
    def __init__(
        self,
        *,
        index: SearchIndex,
        embedder: Embedder,
        authors: Callable[[], Sequence[Author]],
        llm: LLMClient | None,
        reranker: Reranker | None = None,
        context_tokens: int = 1200,
        candidates: int = 50,
        llm_self_query: bool = False,
        max_new_tokens: int = 256,
        tracer: Tracer = no_tracing,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.authors = authors
        self.llm = llm
        self.reranker = reranker
        self.context_tokens = context_tokens
        self.candidates = candidates
        self.llm_self_query = llm_self_query
        self.max_new_tokens = max_new_tokens
        self._self_query = tracer("self_query")(self_query)
        self._expand = tracer("query_expansion")(expand_query)
        self._search = tracer("hybrid_search")(self._search_all)
        self._rerank = tracer("rerank")(rerank)
        self._generate = tracer("generation")(self._call_llm)

    def _search_all(self, queries: list[str], filters: SearchFilters, k: int) -> list[ScoredChunk]:
        per_query = {
            f"q{i}": hybrid_search(
                q, self.index, self.embedder, filters, k=self.candidates, candidates=self.candidates
            ).hits
            for i, q in enumerate(queries)
        }
        fused = per_query["q0"] if len(per_query) == 1 else reciprocal_rank_fusion(per_query)
        return deduplicate(fused, limit=k * 4)

    def retrieve(self, request: RAGRequest) -> Retrieval:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        authors = list(self.authors())
        inferred = self._self_query(request.query, authors, self.llm if self.llm_self_query else None)
        explicit = replace(request.filters, author_id=request.author_id or request.filters.author_id)
        filters = merge_filters(explicit, inferred.filters)
        timings["self_query"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        queries = (
            self._expand(request.query, self.llm, request.expansions + 1) if request.expansions else [request.query]
        )
        timings["expansion"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        hits = self._search(queries, filters, request.k)
        timings["search"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        hits = self._rerank(request.query, hits, self.reranker)[: request.k]
        timings["rerank"] = (time.perf_counter() - started) * 1000
        author = next((a for a in authors if a.id == filters.author_id), None)
        return Retrieval(
            author_name=author.full_name if author else None,
            hits=hits,
            filters=filters,
            self_query_method=inferred.method,
            queries=queries,
            injection_flags=injection_flags([request.query, *(m.content for m in request.history)]),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )

    def prompt(self, request: RAGRequest, retrieval: Retrieval) -> tuple[list[Message], Context]:
        count = self.embedder.count_tokens
        context = assemble_context(retrieval.hits, count, self.context_tokens)
        return rag_messages(request.query, context, retrieval.author_name, request.history), context

    def _call_llm(self, messages: list[Message], params: GenerationParams) -> Generation:
        if self.llm is None:
            raise LLMUnavailable("no LLM is configured")
        return self.llm.generate(messages, params)

    def params(self, max_tokens: int | None = None, temperature: float = 0.7) -> GenerationParams:
        return GenerationParams(
            max_tokens=min(max_tokens or self.max_new_tokens, self.max_new_tokens), temperature=temperature
        )

    def answer(self, request: RAGRequest, retrieval: Retrieval, params: GenerationParams) -> Answer:
        messages, context = self.prompt(request, retrieval)
        started = time.perf_counter()
        generation = self._generate(messages, params)
        retrieval.timings_ms["generation"] = round((time.perf_counter() - started) * 1000, 2)
        return Answer(text=generation.text, retrieval=retrieval, context=context, generation=generation)

    def stream(
        self, request: RAGRequest, retrieval: Retrieval, params: GenerationParams
    ) -> tuple[Context, Iterator[str]]:
        if self.llm is None:
            raise LLMUnavailable("no LLM is configured")
        messages, context = self.prompt(request, retrieval)
        return context, self.llm.stream(messages, params)
