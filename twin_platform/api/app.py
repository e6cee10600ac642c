"""The Litestar application. ``create_app()`` wires controllers, dependencies, the guard, the error map and
the query log; ``twin api`` serves it with uvicorn (``create_app`` is also uvicorn's factory for workers)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from twin_platform.api.body import strict_body
from twin_platform.api.controllers.health import HealthController
from twin_platform.api.controllers.openai_compat import OpenAIController
from twin_platform.api.controllers.retrieval import RetrievalController
from twin_platform.api.dependencies import DEPENDENCIES
from twin_platform.api.docs import SCHEMA_PATH, docs_assets, docs_plugins
from twin_platform.api.problems import problem_details
from twin_platform.api.query_log import QueryLogMiddleware
from twin_platform.api.security import is_loopback
from twin_platform.api.state import STATE_KEY, ApiState, open_state
from twin_platform.settings import Settings


def create_app(settings: Settings | None = None, state: ApiState | None = None) -> Litestar:
    """The API. Without ``state`` it connects at start-up (and loads the models then) and closes at shutdown."""
    settings = settings or (state.settings if state else Settings())
    if settings.api_auth_disabled and not is_loopback(settings.api_host):
        raise ValueError(
            "TWIN_API_AUTH_DISABLED is allowed only when the API binds to loopback "
            f"(TWIN_API_HOST is {settings.api_host})"
        )

    def startup(app: Litestar) -> None:
        app.state[STATE_KEY] = state or open_state(settings)

    def shutdown(app: Litestar) -> None:
        if state is None and STATE_KEY in app.state:
            app.state[STATE_KEY].close()

    def query_log(app: Litestar) -> Any:
        return app.state[STATE_KEY].query_log if STATE_KEY in app.state else None

    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    return Litestar(
        route_handlers=[RetrievalController, OpenAIController, HealthController, *docs_assets()],
        dependencies=DEPENDENCIES,
        before_request=strict_body,
        middleware=[QueryLogMiddleware(query_log)],
        plugins=[problem_details],
        on_startup=[startup],
        on_shutdown=[shutdown],
        request_max_body_size=settings.api_max_body_bytes,
        cors_config=CORSConfig(allow_origins=origins) if origins else None,
        openapi_config=OpenAPIConfig(
            title="twin_platform RAG API",
            version="0.2.0",
            description="Query an author's twin: retrieval over everything they wrote, answers in their voice. "
            "Every /v1 route needs an API key (`Authorization: Bearer <key>`); errors are RFC 9457 problem details.",
            components=Components(security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"apiKey": []}],
            path=SCHEMA_PATH,
            render_plugins=docs_plugins(),  # served from installed packages: the pages render offline
        ),
    )
