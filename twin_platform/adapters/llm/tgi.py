"""Text Generation Inference through ``huggingface_hub.InferenceClient``: the Messages API
(``/v1/chat/completions``), falling back to ``text_generation`` (``/generate``) on servers without it.
Answer scoring (perplexity) uses TGI's own routes: ``/chat_tokenize``, ``/tokenize`` and ``/generate`` with
``decoder_input_details``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from twin_platform.adapters.llm.resilience import server_busy
from twin_platform.domain.llm import (
    Generation,
    GenerationParams,
    LLMError,
    LLMUnavailable,
    Message,
    ScoringNotSupported,
)

_NO_MESSAGES_API = {404, 405, 422}
# TGI's finish reasons in OpenAI's words (what Generation promises); "length" is the same in both.
_FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop"}


def chatml(messages: Sequence[Message]) -> str:
    """A ChatML prompt for ``/generate`` (SmolLM2 and many fine-tunes use this template)."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _finish_reason(reason: str | None) -> str:
    return _FINISH_REASONS.get(reason or "stop", reason or "stop")


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
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
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
                        finish_reason=_finish_reason(out.choices[0].finish_reason),
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
                seed=params.seed,
                details=True,
            )
            return Generation(
                text=details.generated_text,
                model=self.model_id,
                completion_tokens=details.details.generated_tokens if details.details else 0,
                finish_reason=_finish_reason(details.details.finish_reason if details.details else None),
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

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON to one of TGI's own routes, with the errors mapped as for generation."""
        url = f"{self.base_url}{path}"
        try:
            response = httpx.post(url, json=body, headers=self._headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(f"TGI at {self.base_url} is unreachable: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise server_busy(f"TGI at {self.base_url}", status, response.headers)
        if status in {404, 405} and path == "/chat_tokenize":
            raise ScoringNotSupported(f"TGI at {self.base_url} has no /chat_tokenize route (added in TGI 2.3)")
        if status >= 400:
            raise LLMError(f"TGI at {self.base_url} refused {path} ({status}): {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise LLMError(f"TGI at {self.base_url} answered {path} with something other than JSON") from exc

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        """:meth:`AnswerScorer.answer_logprob` from TGI's prompt log-probabilities.

        ``/chat_tokenize`` renders the prompt with the served model's own chat template; ``/tokenize`` gives the
        tokens of prompt + answer with byte offsets, so the answer's tokens are counted from the end; ``/generate``
        with ``decoder_input_details`` returns each input token's log-probability (``details.prefill``). TGI 3
        returns them only when started with ``--enable-prefill-logprobs``; without it this raises
        :class:`ScoringNotSupported`.
        """
        if not answer:
            return 0.0, 0
        templated = self._post("/chat_tokenize", {"messages": [m.as_dict() for m in messages]})
        prompt = str(templated["templated_text"])
        text = prompt + answer
        tokens = self._post("/tokenize", {"inputs": text})
        if tokens and not any(t["stop"] for t in tokens):
            raise ScoringNotSupported(f"TGI at {self.base_url} gives no token offsets (a slow tokenizer?)")
        boundary = len(prompt.encode("utf-8"))  # TGI's offsets count bytes
        count = sum(1 for t in tokens if t["start"] >= boundary)
        if count == 0:
            return 0.0, 0
        out = self._post(
            "/generate",
            {"inputs": text, "parameters": {"max_new_tokens": 1, "details": True, "decoder_input_details": True}},
        )
        prefill = (out.get("details") or {}).get("prefill") or []
        if not prefill:
            raise ScoringNotSupported(
                f"TGI at {self.base_url} returned no prompt log-probabilities: start it with --enable-prefill-logprobs"
            )
        if len(prefill) != len(tokens):
            raise LLMError(
                f"TGI at {self.base_url} scored {len(prefill)} prompt tokens but tokenized {len(tokens)}: "
                "the input was truncated?"
            )
        logprobs = [t.get("logprob") for t in prefill[-count:]]
        if any(lp is None or not math.isfinite(lp) for lp in logprobs):
            raise LLMError(f"TGI at {self.base_url} returned a missing or non-finite log-probability")
        return float(sum(logprobs)), count

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
