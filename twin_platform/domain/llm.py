"""Text generation: messages in, text out, whatever serves the model (TGI, OpenAI-compatible, local)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    json_schema: dict[str, object] | None = None  # ask for JSON matching this schema, where supported


class LLMError(Exception):
    """Generation failed; the message says why."""


class LLMUnavailable(LLMError):
    """The model server is down, timing out, or the circuit breaker is open: answer 503 fast."""


class LLMOverloaded(LLMError):
    """Every generation slot is busy: answer 429/503 at once rather than queue forever."""


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class LLMClient(Protocol):
    @property
    def backend(self) -> str:
        """``local``, ``tgi`` or ``openai``."""
        ...

    @property
    def model_id(self) -> str:
        """The model that answers (a registry version, TGI's model id, an OpenAI model name)."""
        ...

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation: ...

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        """Yield text pieces as they are generated."""
        ...

    def health(self) -> bool:
        """True when the backend answers (cheaply; no generation)."""
        ...
