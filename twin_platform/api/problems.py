"""One map from exceptions to RFC 9457 problem details (``application/problem+json``), through Litestar's
problem-details plugin: validation -> 400 naming each field, HTTP errors as they are, an unavailable LLM or
database -> 503 with ``Retry-After``, a failing LLM -> 502, anything else -> 500 (logged, never shown)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
import sqlalchemy as sa
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin

from twin_platform.api.query_log import record_of
from twin_platform.api.schemas import Problem as ProblemSchema
from twin_platform.domain.llm import LLMError, LLMOverloaded, LLMUnavailable

logger = logging.getLogger(__name__)
DATABASE_RETRY_SECONDS = 5
DATABASE_DOWN = "the database is unavailable; retry shortly"


class Problem(ProblemDetailsException):
    """A problem-details answer that also notes its detail in the request's query-log row."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        self.type_ = self.type_ or "about:blank"
        self.title = self.title or HTTPStatus(self.status_code).phrase
        self.instance = self.instance or request.url.path
        if (record := record_of(request.scope)) is not None:
            record.error = self.detail
        return super().to_response(request)


def _validation(exc: ValidationException) -> Problem:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field = str(item.get("key") or "body")
            message = str(item.get("message", ""))
            if field == "data":  # Litestar's name for a missing body
                field, message = "body", "is empty; expected a JSON object"
            errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or exc.detail
    return Problem(status_code=400, detail=detail, extra={"errors": errors})


def _http(exc: HTTPException) -> Problem:
    if exc.status_code >= 500:
        logger.error("server error", exc_info=exc)
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    return Problem(status_code=exc.status_code, detail=exc.detail, headers=headers or None)


def _llm(exc: LLMError) -> Problem:
    if isinstance(exc, LLMOverloaded):
        return Problem(status_code=503, detail=str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, LLMUnavailable):
        return Problem(status_code=503, detail=str(exc), headers={"Retry-After": "5"})
    return Problem(status_code=502, detail=str(exc))


def _database(exc: Exception) -> Problem:
    logger.warning("database unavailable: %s", exc)
    return Problem(status_code=503, detail=DATABASE_DOWN, headers={"Retry-After": str(DATABASE_RETRY_SECONDS)})


def _unexpected(exc: Exception) -> Problem:
    logger.error("unhandled error", exc_info=exc)
    return Problem(status_code=500, detail="an unexpected error occurred; it was logged")


# Connection failures, pool exhaustion and server shutdowns; a query's own error stays a 500.
DATABASE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, psycopg.OperationalError)

problem_details = ProblemDetailsPlugin(
    ProblemDetailsConfig(
        exception_to_problem_detail_map={
            ValidationException: _validation,
            HTTPException: _http,
            LLMError: _llm,
            **dict.fromkeys(DATABASE_UNAVAILABLE, _database),
            Exception: _unexpected,
        }
    )
)

_DESCRIPTIONS = {
    400: "The request is invalid; `errors` names each field.",
    401: "No valid API key.",
    413: "The body is too large.",
    429: "Rate limited; `Retry-After` says when to retry.",
    502: "The model server answered with an error.",
    503: "The LLM or the database is unavailable; `Retry-After` says when to retry.",
}
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ProblemSchema, description=text, media_type="application/problem+json")
    for status, text in _DESCRIPTIONS.items()
}
