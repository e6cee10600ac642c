"""Opik traces for the RAG steps when ``OPIK_*`` settings are present; a no-op without network otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
OPIK_SETTINGS = ("OPIK_API_KEY", "OPIK_URL_OVERRIDE")


def opik_configured() -> bool:
    return any(os.environ.get(name) for name in OPIK_SETTINGS) and os.environ.get("OPIK_TRACK_DISABLE") != "true"


def make_tracer() -> Callable[[str], Callable[[F], F]]:
    """``opik.track(name=...)`` when Opik is configured; identity otherwise (opik is not even imported)."""
    if not opik_configured():
        os.environ.setdefault("OPIK_TRACK_DISABLE", "true")
        os.environ.setdefault("OPIK_SENTRY_ENABLE", "false")
        return lambda name: lambda fn: fn
    import opik

    os.environ.setdefault("OPIK_PROJECT_NAME", "twin_platform")

    def tracer(name: str) -> Callable[[F], F]:
        def wrap(fn: F) -> F:
            return opik.track(name=name)(fn)  # type: ignore[return-value]

        return wrap

    return tracer
