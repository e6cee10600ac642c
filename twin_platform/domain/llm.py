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
    """One answer. ``finish_reason`` uses OpenAI's words on every backend: ``"length"`` when the model was cut
    off at ``max_tokens``, ``"stop"`` when it ended by itself (end-of-sequence token or a stop string)."""

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
    seed: int | None = None  # sampling seed (local, TGI and OpenAI-compatible servers): same seed, same answers


class LLMError(Exception):
    """Generation failed; the message says why."""


class LLMUnavailable(LLMError):
    """The model server is down, timing out, or the circuit breaker is open: answer 503 fast."""


class LLMOverloaded(LLMError):
    """Every generation slot is busy: answer 429/503 at once rather than queue forever."""


class ScoringNotSupported(LLMError):
    """The backend cannot say how likely a given answer is (no prompt log-probabilities): a limit of the
    backend, not a failure, so it is never retried."""


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


@runtime_checkable
class AnswerScorer(Protocol):
    """Scores a given answer under the model, for perplexity: what a local model, a TGI endpoint (started with
    ``--enable-prefill-logprobs``) and the resilience wrapper can do; OpenAI-compatible chat endpoints cannot
    and raise :class:`ScoringNotSupported`."""

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        """The sum of the natural-log probabilities of ``answer``'s tokens, each given everything before it,
        after ``messages`` rendered with the model's chat template and its generation prompt; and how many
        tokens that is.

        The answer's tokens are those of the templated prompt followed by ``answer`` that start at or after
        the prompt's end (a token straddling the boundary counts as prompt); the end-of-turn token after the
        answer is not scored, so the number means the same under any chat template. An empty answer is
        ``(0.0, 0)``.
        """
        ...
