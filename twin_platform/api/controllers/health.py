"""``/health`` (liveness) and ``/ready`` (readiness): no key needed, for load balancers and orchestrators."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.response import Response

from twin_platform.api.schemas import Health, Readiness
from twin_platform.api.state import STATE_KEY, ApiState


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012 - Litestar's declared attribute type

    @get("/health", sync_to_thread=False)
    def health(self) -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @get(
        "/ready",
        sync_to_thread=True,
        responses={503: ResponseSpec(data_container=Readiness, description="Not ready: what is missing.")},
    )
    def ready(self, state: State) -> Response[Readiness]:
        """Readiness: the database answers and the LLM is loaded and reachable."""
        api: ApiState = state[STATE_KEY]
        database = api.database_ok()
        llm = api.llm is not None and api.llm.health()
        body = Readiness(
            status="ready" if database and llm else "not ready",
            database=database,
            llm=llm,
            llm_backend=api.settings.llm_backend,
            llm_error=api.llm_error,
        )
        return Response(body, status_code=200 if database and llm else 503)
