"""``/v1/search`` and ``/v1/rag``: the author's writing retrieved, and answers in their voice."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Response, ServerSentEvent

from twin_platform.api.dependencies import FilterBuilder
from twin_platform.api.guards import require_api_key
from twin_platform.api.presenters import TokenStream, note_retrieval, rag_events, rag_response, search_response
from twin_platform.api.problems import ERROR_RESPONSES
from twin_platform.api.query_log import RequestRecord
from twin_platform.api.schemas import RagRequest, RagResponse, SearchRequest, SearchResponse
from twin_platform.domain.llm import LLMClient
from twin_platform.rag.pipeline import RAGPipeline, RAGRequest, Retrieval


def _retrieve(
    pipeline: NamedDependency[RAGPipeline],
    build_filters: NamedDependency[FilterBuilder],
    record: NamedDependency[RequestRecord],
    data: JSONBody[SearchRequest],
    expansions: int = 0,
) -> Retrieval:
    record.note_query(data.query)
    filters = build_filters(data.query, data.author, data.filters)
    retrieval = pipeline.retrieve(
        RAGRequest(query=data.query, author_id=filters.author_id, k=data.k, filters=filters, expansions=expansions)
    )
    note_retrieval(record, retrieval)
    return retrieval


class RetrievalController(Controller):
    path = "/v1"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's declared attribute type
    tags = ["retrieval"]  # noqa: RUF012

    @post("/search", sync_to_thread=True, status_code=200, responses=ERROR_RESPONSES)
    def search(
        self,
        data: JSONBody[SearchRequest],
        pipeline: NamedDependency[RAGPipeline],
        build_filters: NamedDependency[FilterBuilder],
        record: NamedDependency[RequestRecord],
    ) -> SearchResponse:
        """Retrieval only: self-query, filtered hybrid search (pgvector + full text, RRF), dedupe, rerank."""
        return search_response(data.query, _retrieve(pipeline, build_filters, record, data))

    @post(
        "/rag",
        sync_to_thread=True,
        status_code=200,
        responses={
            200: ResponseSpec(
                data_container=RagResponse,
                description="The answer with its sources; with `stream: true`, `text/event-stream`: `token` "
                "events, then one `sources` event (or an `error` event if the model fails mid-answer).",
            ),
            **ERROR_RESPONSES,
        },
    )
    def rag(
        self,
        data: JSONBody[RagRequest],
        pipeline: NamedDependency[RAGPipeline],
        build_filters: NamedDependency[FilterBuilder],
        record: NamedDependency[RequestRecord],
        llm: NamedDependency[LLMClient],
        model_version: NamedDependency[str | None],
    ) -> Response[Any]:
        """Answer in the author's voice from their retrieved writing; ``stream: true`` sends server-sent events.
        ``model_version`` names the registry release that answered."""
        retrieval = _retrieve(pipeline, build_filters, record, data, data.expansions)
        params = pipeline.params(data.max_tokens, data.temperature)
        request = RAGRequest(query=data.query, author_id=retrieval.filters.author_id, k=data.k)
        if data.stream:
            context, pieces = pipeline.stream(request, retrieval, params)
            stream = TokenStream(pieces, record, llm.model_id, model_version)
            return ServerSentEvent(rag_events(stream, retrieval, context.sources))
        answer = pipeline.answer(request, retrieval, params)
        record.note_generation(answer.generation, model_version)
        return Response(rag_response(answer, model_version))
