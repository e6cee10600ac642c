"""The model registry's records: a trained twin (:class:`ModelEntry`) and its release history (:class:`ReleaseEvent`).

A model is identified by ``version``, its artifact's content digest: the same weights are the same model,
however often training produces them. Its ``state`` moves only through the registry's operations:

- ``candidate``: registered, not (yet) served;
- ``released``: its author's released twin. At most one model per author is released at a time;
- ``refused``: an evaluation's gates failed (a forced release can still release it);
- ``retired``: was released, then replaced by a newer release or rolled back.

Which model is *the* released twin: per author, the one in state ``released``; for a single served model
(the API), the author named by the caller, else the most recently released model across authors.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ModelState = Literal["candidate", "released", "refused", "retired"]
MODEL_STATES: tuple[ModelState, ...] = ("candidate", "released", "refused", "retired")

# ``register``: a version entered the registry; ``retire``: a release replaced it. The others are what
# ``twin models`` and the evaluation do; ``force-release`` is a release past failed or missing gates.
ReleaseAction = Literal["register", "release", "force-release", "refuse", "rollback", "retire"]
RELEASE_ACTIONS: tuple[ReleaseAction, ...] = ("register", "release", "force-release", "refuse", "rollback", "retire")


class Lineage(BaseModel):
    """What a model was made from. ``None`` means unknown (entries migrated from the JSON registry that
    predate a field); a model trained by this platform records all of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instruction_dataset: str | None = None
    preference_dataset: str | None = None
    sft_adapter: str | None = None
    dpo_adapter: str | None = None
    base_model: str | None = None
    code_version: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class Gate(BaseModel):
    """One release gate's result: its name, whether it passed, and its numbers (kept as given: ``value``,
    ``threshold``, ... as the evaluation writes them)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(min_length=1)
    passed: bool


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: JSON (and Postgres JSONB) has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


class ModelEntry(BaseModel):
    """A trained twin as the registry keeps it.

    ``uri`` is where the artifact lives: a local folder (a path or ``file://`` URI) or ``s3://bucket/key``.
    ``metrics`` are training metrics; one that was not measured (NaN) is left out. ``evaluation`` is the
    evaluation's JSON as stored (``None`` until evaluated); its ``gates`` list decides a release.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    author: str = Field(min_length=1)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    uri: str = Field(min_length=1)
    lineage: Lineage = Field(default_factory=Lineage)
    metrics: dict[str, float] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    state: ModelState = "candidate"
    released_at: datetime | None = None  # when it last became its author's released twin
    # Where its release was published for serving (``s3://bucket/releases/author/version/``); None when it was
    # never published (no TWIN_RELEASE_S3_BUCKET at the time).
    release_uri: str | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _drop_unmeasured(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))}
        return value

    @field_validator("evaluation", mode="before")
    @classmethod
    def _evaluation_as_json(cls, value: object) -> object:
        return json_safe(value)

    @field_validator("created_at", "released_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def released(self) -> bool:
        return self.state == "released"

    @property
    def model_id(self) -> str:
        """How answers, ``/v1/models`` and the query log name this model: ``name@version``."""
        return f"{self.name}@{self.version}"

    def gates(self) -> list[Gate] | None:
        """The stored evaluation's gate results; ``None`` when the model has not been evaluated or the
        evaluation carries no ``gates`` list."""
        if self.evaluation is None or not isinstance(self.evaluation.get("gates"), list):
            return None
        return [Gate.model_validate(gate) for gate in self.evaluation["gates"]]


def failed_gates(gates: list[Gate]) -> list[Gate]:
    return [gate for gate in gates if not gate.passed]


class ReleaseEvent(BaseModel):
    """One row of the release history: what happened to ``version``, why, on whose word, with which gates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    version: str
    action: ReleaseAction
    reason: str
    gates: list[Gate] = Field(default_factory=list)
    actor: str
    at: datetime
