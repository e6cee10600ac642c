"""The query encoder: what embeds a search query (one short text per request, latency-bound).

Chunks are embedded in batches by sentence-transformers on torch (``Runtime.embedder``). Queries use the same
model on ONNX Runtime by default (``TWIN_EMBEDDING_QUERY_BACKEND=onnx``): the same weights and pooling, half the
time per query on one core, and the torch vectors to float precision (the same top-5 on all 300 benchmark
queries: ``python -m twin_platform.benchmarks.encoders``). The int8-quantized graph is about 3x faster again but
keeps the same top-5 on only 69% of those queries, below the 98% a query encoder must reach, so it is not offered.
"""

from __future__ import annotations

import os
import threading

from twin_platform.adapters.embedding import SentenceEmbedder, load_embedder
from twin_platform.adapters.onnx_encoder import OnnxEmbedder
from twin_platform.settings import Settings

_cache: dict[tuple[str, int], OnnxEmbedder] = {}
_lock = threading.Lock()


def default_threads() -> int:
    """Threads per process: ``OMP_NUM_THREADS`` when set (``twin api`` sets it to the cores per worker), else 0
    (ONNX Runtime's default: every core)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


def query_embedder(settings: Settings, *, threads: int | None = None) -> SentenceEmbedder | OnnxEmbedder:
    """The configured query encoder, loaded once per process (an ONNX graph is exported on first use)."""
    backend = settings.embedding_query_backend
    if backend == "torch":
        return load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    threads = default_threads() if threads is None else threads
    key = (settings.embedding_model, threads)
    with _lock:
        if key not in _cache:
            _cache[key] = OnnxEmbedder(
                settings.embedding_model,
                cache_dir=settings.data_path / "models" / "onnx",
                intra_op_num_threads=threads,
                batch_size=settings.embedding_batch_size,
            )
        return _cache[key]
