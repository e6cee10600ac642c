"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, TGI's Messages API, llama.cpp server ...)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import openai

from twin_platform.adapters.llm.resilience import server_busy
from twin_platform.domain.llm import (
    Generation,
    GenerationParams,
    LLMError,
    LLMUnavailable,
    Message,
    ScoringNotSupported,
)


class OpenAIClient:
    backend = "openai"

    def __init__(self, base_url: str | None, *, api_key: str | None, model: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.model_id = model
        # Retries are the resilience wrapper's job: one attempt here.
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0)
        self._name = f"the OpenAI-compatible endpoint {self._client.base_url}"

    @staticmethod
    def _messages(messages: Sequence[Message]) -> Any:
        return [m.as_dict() for m in messages]

    def _kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": params.json_schema},
            }
        return kwargs

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation:
        try:
            out = self._client.chat.completions.create(
                messages=[m.as_dict() for m in messages],  # type: ignore[misc]
                **self._kwargs(params),
            )
        except openai.APITimeoutError as exc:
            raise LLMUnavailable(f"{self._name} timed out") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"{self._name} is unreachable: {exc}") from exc
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise server_busy(self._name, exc.status_code, exc.response.headers) from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"{self._name} refused the request ({exc.status_code})") from exc
        choice = out.choices[0]
        return Generation(
            text=choice.message.content or "",
            model=out.model or self.model_id,
            prompt_tokens=out.usage.prompt_tokens if out.usage else 0,
            completion_tokens=out.usage.completion_tokens if out.usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        try:
            chunks: Any = self._client.chat.completions.create(
                messages=self._messages(messages), stream=True, **self._kwargs(params)
            )
            for chunk in chunks:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    yield delta
        except (openai.APIError, httpx.HTTPError) as exc:
            raise LLMUnavailable(f"{self._name} failed while streaming: {exc}") from exc

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        """Not possible here: chat completions return log-probabilities of the tokens the model generates, never
        of a given answer in the prompt (the legacy ``/v1/completions`` ``echo`` option that did is gone from
        OpenAI and optional elsewhere), so perplexity is not computed for this backend."""
        raise ScoringNotSupported(
            f"{self._name} cannot score a given answer: OpenAI-compatible chat endpoints return no prompt "
            "log-probabilities, so perplexity is not computed for this backend"
        )

    def health(self) -> bool:
        try:
            self._client.models.list(timeout=2.0)
            return True
        except openai.APIStatusError as exc:
            return exc.status_code < 500  # it answers; it may just not list models
        except openai.APIError:
            return False
