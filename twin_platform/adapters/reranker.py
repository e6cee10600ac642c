"""Cross-encoder reranking (``TWIN_RERANKER_MODEL``: a sentence-transformers CrossEncoder id or path)."""

from __future__ import annotations

from collections.abc import Sequence


class CrossEncoderReranker:
    def __init__(self, model: str) -> None:
        from sentence_transformers import CrossEncoder

        self.model_id = model
        self._model = CrossEncoder(model, device="cpu")

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(s) for s in self._model.predict([(query, text) for text in texts], show_progress_bar=False)]
