"""Dependencies handlers ask for by name (Litestar's ``Provide``): each gets what it uses, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException

from twin_platform.api.query_log import RequestRecord, record_of
from twin_platform.api.schemas import Filters
from twin_platform.api.state import STATE_KEY, ApiState, Serving
from twin_platform.domain.authors import Author, find_author
from twin_platform.domain.llm import LLMClient, LLMUnavailable
from twin_platform.domain.retrieval import SearchFilters
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.settings import Settings


def _state(state: State) -> ApiState:
    api: ApiState = state[STATE_KEY]
    return api


def provide_settings(state: State) -> Settings:
    return _state(state).settings


def provide_serving(state: State) -> Serving:
    """What serves now (pipeline and release, swapped as one); the request keeps it even if a new release is
    swapped in meanwhile, so its answer and its ``model_version`` belong together."""
    return _state(state).serving


def provide_pipeline(serving: NamedDependency[Serving]) -> RAGPipeline:
    """The request's pipeline, and with it its LLM."""
    return serving.pipeline


def provide_model_version(serving: NamedDependency[Serving]) -> str | None:
    """The registry version of the request's model (None when it is no registry release)."""
    return serving.release.version if serving.release is not None else None


def provide_llm(state: State, pipeline: NamedDependency[RAGPipeline]) -> LLMClient:
    """The request's pipeline's LLM (so both name the same model); a 503 (``LLMUnavailable``) while it loads or
    when it failed to load."""
    if pipeline.llm is None:
        raise LLMUnavailable(f"no LLM is available: {_state(state).llm_error or 'the model is still loading'}")
    return pipeline.llm


def provide_model_name(state: State) -> str:
    """The id of the model answering (a release is ``name@version``; ``twin`` while it loads)."""
    llm = _state(state).llm
    return llm.model_id if llm is not None else "twin"


def provide_model_created(state: State) -> int:
    """When the served release was created (Unix time); the API's start for other models."""
    api = _state(state)
    return int(api.release.created_at.timestamp()) if api.release is not None else api.started_at


def provide_record(request: Request[Any, Any, Any]) -> RequestRecord:
    """This request's query-log record (a detached one outside ``/v1``)."""
    return record_of(request.scope) or RequestRecord(endpoint=request.url.path)


class FilterBuilder:
    """Turns a request's ``query``, ``author`` and ``filters`` into validated :class:`SearchFilters`."""

    def __init__(self, authors: Callable[[], list[Author]], max_query_chars: int) -> None:
        self._authors = authors
        self._max_query_chars = max_query_chars

    def __call__(self, query: str, author: str | None, filters: Filters) -> SearchFilters:
        if len(query) > self._max_query_chars:
            raise _invalid("query", f"Expected `str` of length <= {self._max_query_chars}")
        if not query.strip():
            raise _invalid("query", "must not be blank")
        author_id = None
        if author:
            found = find_author(self._authors(), author)
            if found is None:
                raise _invalid("author", f"no registered author is called {author!r}")
            author_id = found.id
        return SearchFilters(
            author_id=author_id,
            platforms=tuple(filters.platforms),
            categories=tuple(filters.categories),
            published_after=_day(filters.published_after),
            published_before=_day(filters.published_before),
        )


def _day(value: date | None) -> datetime | None:
    return datetime(value.year, value.month, value.day, tzinfo=UTC) if value else None


def _invalid(field: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{field}: {message}", extra=[{"key": field, "message": message}])


def provide_filters(state: State) -> FilterBuilder:
    api = _state(state)
    return FilterBuilder(api.authors, api.settings.api_max_query_chars)


DEPENDENCIES = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "serving": Provide(provide_serving, sync_to_thread=False),
    "pipeline": Provide(provide_pipeline, sync_to_thread=False),
    "model_version": Provide(provide_model_version, sync_to_thread=False),
    "llm": Provide(provide_llm, sync_to_thread=False),
    "record": Provide(provide_record, sync_to_thread=False),
    "model_name": Provide(provide_model_name, sync_to_thread=False),
    "model_created": Provide(provide_model_created, sync_to_thread=False),
    "build_filters": Provide(provide_filters, sync_to_thread=False),
}
