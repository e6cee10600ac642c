"""Build the configured LLM client (``TWIN_LLM_BACKEND``), wrapped in retries, a breaker and a pool."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from twin_platform.adapters.llm.resilience import CircuitBreaker, ResilientLLM
from twin_platform.domain.llm import Generation, GenerationParams, LLMClient, LLMError, Message
from twin_platform.settings import Settings

if TYPE_CHECKING:
    from twin_platform.adapters.llm.local import LocalClient

BatchGenerate = Callable[[Sequence[Sequence[Message]], GenerationParams], list[Generation]]


def models_dir(settings: Settings) -> Path:
    path = settings.data_path / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def latest_released_model(directory: Path) -> Path | None:
    """The newest released twin in the model registry (``models/registry.json``), if any."""
    from twin_platform.adapters.registry import read_registry

    entries = [e for e in read_registry(directory) if e.get("released")]
    for entry in sorted(entries, key=lambda e: str(e.get("created_at", "")), reverse=True):
        path = Path(entry["path"])
        if (path / "config.json").exists():
            return path
    return None


def base_model(settings: Settings) -> str:
    """The model to fine-tune (and to write rejected answers): configured, else SmolLM2 converted locally."""
    from twin_platform.adapters.llm.local import ensure_smollm2

    return settings.training_base_model or str(ensure_smollm2(models_dir(settings)))


Progress = Callable[[int, int], None]  # (done, total)


def dataset_generator(settings: Settings, base: str, progress: Progress | None = None) -> BatchGenerate:
    """Batch generation for dataset building: the base model in-process for ``local`` (never the released
    twin), else the configured TGI/OpenAI endpoint with ``llm_max_concurrent`` requests in flight."""
    if settings.llm_backend == "local":
        from twin_platform.adapters.llm.local import LocalClient

        return local_batch_generator(LocalClient(Path(base)), settings.dataset_generation_batch_size, progress)
    client = build_llm(settings)

    def generate(conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        done = 0
        lock = threading.Lock()

        def one(messages: Sequence[Message]) -> Generation:
            nonlocal done
            try:
                return client.generate(messages, params)
            except LLMError as exc:  # one failed prompt is a dropped sample, not a failed dataset
                return Generation(text="", model=client.model_id, finish_reason=f"error: {exc}")
            finally:
                with lock:
                    done += 1
                    if progress and (done % 8 == 0 or done == len(conversations)):
                        progress(done, len(conversations))

        with ThreadPoolExecutor(max_workers=settings.llm_max_concurrent) as pool:
            return list(pool.map(one, conversations))

    return generate


def local_batch_generator(client: LocalClient, batch_size: int, progress: Progress | None = None) -> BatchGenerate:
    def generate(conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        return client.generate_batch(conversations, params, batch_size=batch_size, progress=progress)

    return generate


def local_model_path(settings: Settings) -> Path:
    from twin_platform.adapters.llm.local import ensure_smollm2

    if settings.llm_local_model_path is not None:
        return settings.llm_local_model_path
    return latest_released_model(models_dir(settings)) or ensure_smollm2(models_dir(settings))


def build_llm(settings: Settings) -> ResilientLLM:
    inner: LLMClient
    secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if settings.llm_backend == "tgi":
        if not settings.llm_url:
            raise LLMError("TWIN_LLM_BACKEND=tgi needs TWIN_LLM_URL (the TGI endpoint)")
        from twin_platform.adapters.llm.tgi import TGIClient

        inner = TGIClient(
            settings.llm_url, token=secret, timeout=settings.llm_timeout, model_id=settings.llm_model or None
        )
    elif settings.llm_backend == "openai":
        from twin_platform.adapters.llm.openai_client import OpenAIClient

        inner = OpenAIClient(
            settings.llm_url, api_key=secret, model=settings.llm_model or "gpt-4o-mini", timeout=settings.llm_timeout
        )
    else:
        from twin_platform.adapters.llm.local import LocalClient

        inner = LocalClient(local_model_path(settings))
    return ResilientLLM(
        inner,
        retries=settings.llm_retries,
        max_concurrent=settings.llm_max_concurrent,
        breaker=CircuitBreaker(threshold=3, reset_after=settings.llm_breaker_reset_seconds),
    )
