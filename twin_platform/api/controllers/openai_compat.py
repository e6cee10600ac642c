"""OpenAI-compatible routes: point any OpenAI SDK at ``http://host:port/v1`` with an API key."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Response, ServerSentEvent

from twin_platform.api.dependencies import FilterBuilder
from twin_platform.api.guards import require_api_key
from twin_platform.api.presenters import TokenStream, chat_chunks, chat_completion, new_completion_id, note_retrieval
from twin_platform.api.problems import ERROR_RESPONSES
from twin_platform.api.query_log import RequestRecord
from twin_platform.api.schemas import ChatCompletion, ChatCompletionRequest, Filters, Model, ModelList
from twin_platform.domain.llm import LLMClient, Message
from twin_platform.rag.pipeline import RAGPipeline, RAGRequest
from twin_platform.rag.screening import injection_flags

OWNER = "twin_platform"


class OpenAIController(Controller):
    path = "/v1"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's declared attribute type
    tags = ["openai-compatible"]  # noqa: RUF012

    @post(
        "/chat/completions",
        sync_to_thread=True,
        status_code=200,
        responses={
            200: ResponseSpec(
                data_container=ChatCompletion,
                description="A `chat.completion`; with `stream: true`, `text/event-stream` of "
                "`chat.completion.chunk` objects ending with `[DONE]`.",
            ),
            **ERROR_RESPONSES,
        },
    )
    def chat_completions(
        self,
        data: JSONBody[ChatCompletionRequest],
        pipeline: NamedDependency[RAGPipeline],
        build_filters: NamedDependency[FilterBuilder],
        record: NamedDependency[RequestRecord],
        llm: NamedDependency[LLMClient],
        model_version: NamedDependency[str | None],
    ) -> Response[Any]:
        """Chat with the twin: RAG on the last user message, earlier turns as history (system turns ignored);
        ``model_version`` names the registry release that answered."""
        users = [i for i, m in enumerate(data.messages) if m.role == "user"]
        if not users:
            raise ValidationException(
                detail="messages: at least one message must have role 'user'",
                extra=[{"key": "messages", "message": "at least one message must have role 'user'"}],
            )
        last = users[-1]
        query = data.messages[last].content
        record.note_query(query)
        filters = build_filters(query, None, Filters())
        history = tuple(Message(m.role, m.content) for m in data.messages[:last] if m.role != "system")
        request = RAGRequest(query=query, author_id=filters.author_id, history=history)
        retrieval = pipeline.retrieve(request)
        # Every turn is screened, the client's system turns too (they are dropped, but say what was tried).
        retrieval.injection_flags = injection_flags([m.content for m in data.messages])
        note_retrieval(record, retrieval)
        params = pipeline.params(data.max_tokens, data.temperature)
        completion_id, created = new_completion_id()
        if data.stream:
            _, pieces = pipeline.stream(request, retrieval, params)
            stream = TokenStream(pieces, record, llm.model_id, model_version)
            return ServerSentEvent(chat_chunks(completion_id, created, stream))
        answer = pipeline.answer(request, retrieval, params)
        record.note_generation(answer.generation, model_version)
        return Response(chat_completion(completion_id, created, answer, model_version))

    @get("/models", sync_to_thread=False, responses=ERROR_RESPONSES)
    def models(self, model_name: NamedDependency[str], model_created: NamedDependency[int]) -> ModelList:
        """The twin's model (OpenAI's ``models.list()``): a registry release as ``name@version``; any ``model``
        value is accepted by chat completions."""
        model = Model(id=model_name, object="model", created=model_created, owned_by=OWNER)
        return ModelList(object="list", data=[model])
