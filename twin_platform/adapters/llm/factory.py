"""Build the configured LLM client (``TWIN_LLM_BACKEND``), wrapped in retries, a breaker and a pool."""

from __future__ import annotations

import json
from pathlib import Path

from twin_platform.adapters.llm.resilience import CircuitBreaker, ResilientLLM
from twin_platform.domain.llm import LLMClient, LLMError
from twin_platform.settings import Settings


def models_dir(settings: Settings) -> Path:
    path = settings.data_path / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def latest_released_model(directory: Path) -> Path | None:
    """The newest released twin in the model registry (``models/registry.json``), if any."""
    registry = directory / "registry.json"
    if not registry.exists():
        return None
    entries = [e for e in json.loads(registry.read_text()).get("models", []) if e.get("released")]
    for entry in sorted(entries, key=lambda e: str(e.get("created_at", "")), reverse=True):
        path = Path(entry["path"])
        if (path / "config.json").exists():
            return path
    return None


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
            settings.llm_url, token=secret, timeout=settings.llm_timeout, model_id=settings.llm_model or "tgi"
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
