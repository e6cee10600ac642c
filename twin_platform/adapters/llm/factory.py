"""Build the configured LLM client (``TWIN_LLM_BACKEND``), wrapped in retries, a breaker and a pool.

The ``local`` backend serves a model registry entry handed in by the caller (the registry lives in Postgres;
see ``twin_platform.adapters.postgres.model_registry``), whose artifact may be a local folder or in S3."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

from twin_platform.adapters.llm.resilience import CircuitBreaker, ResilientLLM
from twin_platform.domain.llm import Generation, GenerationParams, LLMClient, LLMError, Message
from twin_platform.domain.models import ModelEntry
from twin_platform.settings import Settings

if TYPE_CHECKING:
    from twin_platform.adapters.llm.local import LocalClient

BatchGenerate = Callable[[Sequence[Sequence[Message]], GenerationParams], list[Generation]]


def models_dir(settings: Settings) -> Path:
    path = settings.data_path / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def model_folder(entry: ModelEntry, settings: Settings) -> Path:
    """A local folder with ``entry``'s files: the folder its URI names (a path or ``file://`` URI), or for an
    ``s3://`` artifact the artifact cache under the data dir (where the S3 artifact store keeps its copies),
    downloaded there once when it is not yet on this machine."""
    if entry.uri.startswith("s3://"):
        folder = _s3_copy(entry.uri, settings)
    elif entry.uri.startswith("file://"):
        folder = Path(url2pathname(urlparse(entry.uri).path))
    else:
        folder = Path(entry.uri)
    if not (folder / "config.json").exists():
        raise LLMError(f"model {entry.model_id}: no model files at {folder} (from {entry.uri})")
    return folder


def _s3_copy(uri: str, settings: Settings) -> Path:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    key = key.strip("/")
    prefix = settings.artifacts_s3_prefix.strip("/")
    relative = key[len(prefix) + 1 :] if prefix and key.startswith(prefix + "/") else key
    cache = settings.data_path / "artifact-cache"
    local = (cache / relative).resolve()
    if not local.is_relative_to(cache) or local == cache:
        raise LLMError(f"{uri} does not name an artifact folder")
    if local.exists():
        return local
    from dagster_aws.s3 import S3Resource

    client = S3Resource(endpoint_url=settings.artifacts_s3_endpoint_url).get_client()
    local.parent.mkdir(parents=True, exist_ok=True)
    # Into a temporary sibling first, renamed when complete: a half-downloaded model is never loaded.
    download = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}-"))
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key + "/"):
            for item in page.get("Contents", []):
                target = (download / item["Key"][len(key) + 1 :]).resolve()
                if not target.is_relative_to(download):
                    raise LLMError(f"{uri}: object {item['Key']!r} lies outside the artifact folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))
        if local.exists():  # another process finished the same download first
            shutil.rmtree(download)
        else:
            download.rename(local)
    except BaseException:
        shutil.rmtree(download, ignore_errors=True)
        raise
    return local


def local_model(settings: Settings, release: ModelEntry | None) -> tuple[Path, str | None]:
    """The folder the ``local`` backend loads and the model id it reports: ``TWIN_LLM_LOCAL_MODEL_PATH``
    when set, else ``release`` (named ``name@version``), else SmolLM2 converted from its GGUF."""
    from twin_platform.adapters.llm.local import ensure_smollm2

    if settings.llm_local_model_path is not None:
        return settings.llm_local_model_path, None
    if release is not None:
        return model_folder(release, settings), release.model_id
    return ensure_smollm2(models_dir(settings)), None


def build_judge(settings: Settings) -> ResilientLLM | None:
    """The evaluation's judge (``TWIN_JUDGE_*``), or None when none is configured."""
    if not settings.judge_backend:
        return None
    if not settings.judge_url:
        raise LLMError(f"TWIN_JUDGE_BACKEND={settings.judge_backend} needs TWIN_JUDGE_URL")
    judge = settings.model_copy(
        update={
            "llm_backend": settings.judge_backend,
            "llm_url": settings.judge_url,
            "llm_model": settings.judge_model,
            "llm_api_key": settings.judge_api_key,
        }
    )
    return build_llm(judge)


def build_llm(settings: Settings, release: ModelEntry | None = None) -> ResilientLLM:
    """The configured backend behind retries, a breaker and a pool. ``release`` is the registry entry the
    ``local`` backend serves (the caller looks it up: ``ModelRegistry.current(...)``); the remote backends
    ignore it, their model id comes from the server or ``TWIN_LLM_MODEL``."""
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

        folder, model_id = local_model(settings, release)
        inner = LocalClient(folder, model_id=model_id)
    return ResilientLLM(
        inner,
        retries=settings.llm_retries,
        max_concurrent=settings.llm_max_concurrent,
        breaker=CircuitBreaker(threshold=3, reset_after=settings.llm_breaker_reset_seconds),
    )
