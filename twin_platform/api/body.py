"""Strict request bodies: JSON decoded straight into the request struct, every failure a 400 naming the field.

Litestar converts bodies leniently (``"k": "5"`` becomes 5) and lets a few failures escape as 500s (bytes
that are not UTF-8, JSON nested thousands of levels deep). :func:`strict_body`, a ``before_request`` hook,
decodes the body of every handler that takes ``data`` with msgspec's strict JSON decoder first, so only a
body that passes it reaches Litestar's own parsing (and the struct stays the OpenAPI request schema).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from twin_platform.api.schemas import NO_NUL

T = TypeVar("T", bound=msgspec.Struct)

_AT = re.compile(r"\s*-\s*at `\$\.?([^`]*)`$")
_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.*)$", re.DOTALL)


def field_error(message: str) -> dict[str, str]:
    """``{"key": field, "message": ...}`` from msgspec's ``... - at `$.filters.platforms[0]` ``."""
    match = _AT.search(message)
    path = match.group(1) if match else ""
    message = _AT.sub("", message)
    if (own := _FIELD_PREFIX.match(message)) is not None:  # a struct's own check names its field first
        path = f"{path}.{own.group(1)}" if path else own.group(1)
        message = own.group(2)
    if NO_NUL.encode("unicode_escape").decode() in message or NO_NUL in message:
        message = "must not contain NUL (\\u0000) characters"
    return {"key": path or "body", "message": message}


def decode(body: bytes, model: type[T]) -> T:
    """``body`` as ``model``, strictly; raises :class:`ValidationException` with the failing field."""
    if not body.strip():
        raise ValidationException(
            detail="body: is empty; expected a JSON object",
            extra=[{"key": "body", "message": "is empty; expected a JSON object"}],
        )
    try:
        return msgspec.json.decode(body, type=model, strict=True)
    except msgspec.ValidationError as exc:
        error = field_error(str(exc))
    except UnicodeDecodeError as exc:
        error = {"key": "body", "message": f"is not valid UTF-8 (byte {exc.start})"}
    except RecursionError:
        error = {"key": "body", "message": "is JSON nested too deeply"}
    except msgspec.DecodeError as exc:
        error = {"key": "body", "message": f"is not valid JSON: {exc}"}
    raise ValidationException(detail=f"{error['key']}: {error['message']}", extra=[error])


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: refuse, with a 400, a body that does not decode strictly into the handler's ``data``."""
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    if field is not None:
        decode(await request.body(), field.annotation)
