"""Every error as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from twin_platform.domain.llm import LLMError, LLMOverloaded, LLMUnavailable

logger = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem(
    request: Request[Any, Any, Any], status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_errors(exc: ValidationException) -> list[dict[str, str]]:
    """Name the field in each validation error (msgspec says ``... - at `$.filters.platforms[0]` ``)."""
    errors: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            match = re.search(r"at `\$\.?([^`]*)`", message)
            field = item.get("key") or (match.group(1) if match else "") or "body"
            errors.append({"field": str(field), "message": re.sub(r"\s*-\s*at `[^`]*`", "", message)})
    return errors


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = _field_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or exc.detail
    return problem(request, 400, detail, errors=errors)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    return problem(request, exc.status_code, exc.detail, headers=headers or None)


def handle_llm(request: Request[Any, Any, Any], exc: LLMError) -> Response[dict[str, Any]]:
    if isinstance(exc, LLMOverloaded):
        return problem(request, 503, str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, LLMUnavailable):
        return problem(request, 503, str(exc), headers={"Retry-After": "5"})
    return problem(request, 502, str(exc))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s", request.url.path)
    return problem(request, 500, "an unexpected error occurred; it was logged")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: handle_validation,
    HTTPException: handle_http,
    LLMError: handle_llm,
    Exception: handle_unexpected,
}
