"""``/health`` (liveness) and ``/ready`` (readiness): no key needed, for load balancers and orchestrators."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.response import Response

from twin_platform.api.schemas import Health, Readiness
from twin_platform.api.state import STATE_KEY, ApiState


class ServingReadiness(Readiness, kw_only=True):
    """Readiness and the model that answers: its id (``name@version`` for a registry release) and, when it is
    a release, the registry version."""

    model: str | None
    model_version: str | None


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012 - Litestar's declared attribute type

    @get("/health", sync_to_thread=False)
    def health(self) -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @get(
        "/ready",
        sync_to_thread=True,
        responses={503: ResponseSpec(data_container=ServingReadiness, description="Not ready: what is missing.")},
    )
    def ready(self, state: State) -> Response[ServingReadiness]:
        """Readiness: the database answers and the LLM is loaded and reachable; which model answers."""
        api: ApiState = state[STATE_KEY]
        serving = api.serving  # one read: the model and its release belong together
        database = api.database_ok()
        model = serving.pipeline.llm
        llm = model is not None and model.health()
        body = ServingReadiness(
            status="ready" if database and llm else "not ready",
            database=database,
            llm=llm,
            llm_backend=api.settings.llm_backend,
            llm_error=api.llm_error,
            model=model.model_id if model is not None else None,
            model_version=serving.release.version if serving.release is not None else None,
        )
        return Response(body, status_code=200 if database and llm else 503)
