"""The guard of every ``/v1`` route: authentication, failed-authentication limits, per-key rate limits."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from twin_platform.api.query_log import record_of
from twin_platform.api.security import KEY_QUERY_PARAMETERS, MISS, presented_key
from twin_platform.api.state import ApiState, state_of


def _too_many(detail: str, wait: float) -> TooManyRequestsException:
    return TooManyRequestsException(detail=detail, headers={"Retry-After": str(int(wait) + 1)})


def authenticate(connection: ASGIConnection[Any, Any, Any, Any], state: ApiState) -> str:
    """The name of the key the request presents; 401 without a valid one, 429 once an address has failed too
    often (then without a database lookup)."""
    address = connection.client.host if connection.client else "unknown"
    in_url = [p for p in KEY_QUERY_PARAMETERS if p in connection.query_params]
    key = "" if in_url else presented_key(connection)
    found = state.keys.cached(key) if key else None
    if isinstance(found, str):
        return found
    if (wait := state.auth_failures.wait(address)) > 0:
        raise _too_many("too many failed authentication attempts from this address", wait)
    if found is MISS and (name := state.keys.name_for(key)) is not None:
        return name
    state.auth_failures.take(address)
    detail = (
        f"API keys are not accepted in the URL (query parameter {in_url[0]!r}): send Authorization: Bearer <key>"
        if in_url
        else "a valid API key is required (Authorization: Bearer <key>); create one: twin apikey create NAME"
    )
    raise NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": "Bearer"})


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every ``/v1`` route: a valid key within its rate limit; notes the key's name in the query log."""
    state = state_of(connection.app)
    name = "anonymous" if state.settings.api_auth_disabled else authenticate(connection, state)
    if (record := record_of(connection.scope)) is not None:
        record.api_key_name = name
    if (wait := state.limiter.acquire(name)) > 0:
        limit = state.settings.api_rate_limit_per_minute
        raise _too_many(f"rate limit of {limit} requests per minute exceeded", wait)
