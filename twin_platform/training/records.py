"""What a training stage leaves beside its adapter: ``training.json``, written and read by :class:`TrainingRecord`.

The merged model, the evaluation and the registry read a stage's options, inputs and losses through this one
class, never by digging through a dict.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from twin_platform.training.options import TrainingOptions

RECORD_FILE = "training.json"


class TrainingRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: Literal["sft", "dpo"]
    options: TrainingOptions
    inputs: dict[str, str]  # what it was trained on: input name -> version
    code_version: str
    backend: str  # "transformers" or "unsloth"
    resumed_from: str | None = None
    metrics: dict[str, float]  # trainer's summary: runtime, tokens per second, steps
    evaluation: dict[str, float]  # on the held-out split: eval_loss, DPO reward accuracy and margin
    history: list[dict[str, float]]  # one entry per logged step
    loss_went_down: bool

    @property
    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.history if "loss" in entry]

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def steps(self) -> int:
        return len(self.history)

    def write(self, folder: Path) -> Path:
        path = folder / RECORD_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, folder: Path) -> TrainingRecord:
        return cls.model_validate_json((folder / RECORD_FILE).read_text())
