"""Text Generation Inference through ``huggingface_hub.InferenceClient``: the Messages API
(``/v1/chat/completions``), falling back to ``text_generation`` (``/generate``) on servers without it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from twin_platform.adapters.llm.resilience import server_busy
from twin_platform.domain.llm import Generation, GenerationParams, LLMError, LLMUnavailable, Message

_NO_MESSAGES_API = {404, 405, 422}


def chatml(messages: Sequence[Message]) -> str:
    """A ChatML prompt for ``/generate`` (SmolLM2 and many fine-tunes use this template)."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _status(exc: HfHubHTTPError) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class TGIClient:
    backend = "tgi"

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 60.0, model_id: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._model_id = model_id
        self._client = InferenceClient(base_url=self.base_url, token=token, timeout=timeout)
        self._messages_api = True

    def _kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "value": params.json_schema}
        return kwargs

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation:
        try:
            if self._messages_api:
                try:
                    out = self._client.chat_completion([m.as_dict() for m in messages], **self._kwargs(params))
                    usage = out.usage
                    return Generation(
                        text=out.choices[0].message.content or "",
                        model=out.model or self.model_id,
                        prompt_tokens=usage.prompt_tokens if usage else 0,
                        completion_tokens=usage.completion_tokens if usage else 0,
                        finish_reason=out.choices[0].finish_reason or "stop",
                    )
                except HfHubHTTPError as exc:
                    if _status(exc) not in _NO_MESSAGES_API:
                        raise
                    self._messages_api = False  # an older TGI: use /generate from now on
            details = self._client.text_generation(
                chatml(messages),
                max_new_tokens=params.max_tokens,
                temperature=max(params.temperature, 0.01),
                top_p=min(params.top_p, 0.99),
                stop=list(params.stop) or None,
                details=True,
            )
            return Generation(
                text=details.generated_text,
                model=self.model_id,
                completion_tokens=details.details.generated_tokens if details.details else 0,
                finish_reason=str(details.details.finish_reason) if details.details else "stop",
            )
        except InferenceTimeoutError as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} timed out: {exc}") from exc
        except HfHubHTTPError as exc:
            status = _status(exc)
            if status is None or status >= 500 or status == 429:
                response = getattr(exc, "response", None)
                raise server_busy(f"TGI at {self.base_url}", status, getattr(response, "headers", None)) from exc
            raise LLMError(f"TGI at {self.base_url} refused the request ({status}): {exc}") from exc
        except (OSError, httpx.TransportError) as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} is unreachable: {exc}") from exc

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        try:
            if self._messages_api:
                for chunk in self._client.chat_completion(
                    [m.as_dict() for m in messages], stream=True, **self._kwargs(params)
                ):
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        yield delta
                return
            for token in self._client.text_generation(
                chatml(messages),
                max_new_tokens=params.max_tokens,
                temperature=max(params.temperature, 0.01),
                stream=True,
            ):
                yield str(token)
        except InferenceTimeoutError as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} timed out: {exc}") from exc
        except (HfHubHTTPError, OSError, httpx.TransportError) as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} failed while streaming: {exc}") from exc

    @property
    def model_id(self) -> str:
        """The served model as TGI's ``GET /info`` names it (asked once), unless one was given; ``tgi`` while
        the server does not answer."""
        if self._model_id is None:
            try:
                info = httpx.get(f"{self.base_url}/info", timeout=2.0)
                info.raise_for_status()
                self._model_id = str(info.json()["model_id"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return "tgi"
        return self._model_id

    def health(self) -> bool:
        """TGI's ``GET /health`` answers 200 once the model is loaded."""
        try:
            return httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False
