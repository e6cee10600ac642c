"""What a training run is made of; the fingerprint names it (checkpoints resume only into the same run)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LoraOptions:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"


@dataclass(frozen=True)
class StageOptions:
    """One stage (SFT or DPO). ``max_steps`` > 0 wins over ``epochs``."""

    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int = 0
    warmup_ratio: float = 0.1
    save_steps: int = 10  # checkpoint interval: an interrupted run resumes from the newest one
    beta: float = 0.1  # DPO only: how far the policy may move from the reference


@dataclass(frozen=True)
class TrainingOptions:
    base_model: str  # a local folder or a Hugging Face model id
    max_length: int = 512  # prompt + answer, in tokens
    seed: int = 42
    lora: LoraOptions = field(default_factory=LoraOptions)
    sft: StageOptions = field(default_factory=StageOptions)
    dpo: StageOptions = field(default_factory=lambda: StageOptions(learning_rate=5e-5, batch_size=2))
    load_in_4bit: bool = False  # unsloth on CUDA only

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def fingerprint(self, *parts: str) -> str:
        """A short id for this configuration plus ``parts`` (dataset versions, code version)."""
        payload = json.dumps([self.as_dict(), *parts], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]
