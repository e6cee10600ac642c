"""Query encoder benchmark: may the ONNX (fp32 or int8) encoder replace sentence-transformers on torch for /v1/search?

The stored chunk vectors are made by the torch encoder, so a query encoder may only replace it if it ranks those
chunks the same way. The rule: its exact top-5 over the corpus must be identical to the torch encoder's on at least
98% of the benchmark queries. The corpus is built like the API benchmark's chunks (``~10k`` texts of three demo
sentences each, so every query has dozens of near neighbours and the top-5 is a real ranking) and embedded with
torch; queries are demo-sentence prefixes as the API benchmark sends them. Rankings are brute-force cosine in numpy,
so index approximation (HNSW) plays no part. Also measured: single-query latency of each encoder through
``encode([query])`` (tokenisation included), export time, cache size and cold start. Prints JSON.

    python -m twin_platform.benchmarks.encoders [--chunks 10000] [--queries 300] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin_platform.adapters.embedding import SentenceEmbedder
from twin_platform.adapters.onnx_encoder import OnnxEmbedder
from twin_platform.benchmarks.api import _sentences
from twin_platform.benchmarks.features import _percentiles

AGREEMENT_RULE = 0.98
K = 5
Vectors = npt.NDArray[np.float32]


def corpus_texts(size: int) -> list[str]:
    """The API benchmark's chunk texts: chunk ``i`` is three demo sentences drawn with ``random.Random(i)``."""
    sentences = _sentences()
    return [" ".join(random.Random(i).sample(sentences, 3)) for i in range(size)]  # noqa: S311 - test data


def benchmark_queries(count: int) -> list[str]:
    """Demo-sentence prefixes (120 characters): the API benchmark's queries first (every third sentence), then the
    other sentences the same way, without duplicates."""
    sentences = _sentences()
    ordered = sentences[::3] + sentences[1::3] + sentences[2::3]
    return list(dict.fromkeys(s[:120] for s in ordered))[:count]


def top_k(queries: Vectors, corpus: Vectors, k: int = K) -> tuple[npt.NDArray[np.int64], Vectors]:
    """Exact top-k chunk indices by cosine (vectors are unit length), best first; equal scores by lower index, so
    exact ties (duplicate chunk texts) cannot count as disagreements. Also returns every query's sorted scores."""
    scores = queries @ corpus.T
    picked = np.empty((len(queries), k), dtype=np.int64)
    for row, values in enumerate(scores):
        candidates = np.argpartition(-values, k + 8)[: k + 8]  # a margin so ties at the boundary are all seen
        order = np.lexsort((candidates, -values[candidates]))
        picked[row] = candidates[order][:k]
    ranked = -np.sort(-scores, axis=1)[:, : k + 1]
    return picked, ranked.astype(np.float32)


def agreement(
    reference: npt.NDArray[np.int64],
    candidate: npt.NDArray[np.int64],
    ref_vectors: Vectors,
    vectors: Vectors,
    ref_scores: Vectors,
) -> dict[str, Any]:
    """How far ``candidate``'s top-k matches the torch encoder's, and how close the two query vectors are."""
    same_set = np.array([set(a) == set(b) for a, b in zip(reference, candidate, strict=True)])
    overlap = np.array([len(set(a) & set(b)) / reference.shape[1] for a, b in zip(reference, candidate, strict=True)])
    cosine = np.sum(ref_vectors * vectors, axis=1)
    # The torch ranking's margin between its k-th and (k+1)-th chunk: a disagreement on a near tie says less about
    # the encoder than one on a clear margin.
    gap = ref_scores[:, reference.shape[1] - 1] - ref_scores[:, reference.shape[1]]
    share = float(same_set.mean())
    return {
        "top5_identical_share": round(share, 4),
        "top5_identical_order_share": round(float(np.mean(np.all(reference == candidate, axis=1))), 4),
        "top1_identical_share": round(float(np.mean(reference[:, 0] == candidate[:, 0])), 4),
        "mean_overlap_at_5": round(float(overlap.mean()), 4),
        "query_cosine_mean": round(float(cosine.mean()), 6),
        "query_cosine_min": round(float(cosine.min()), 6),
        "disagreeing_queries": int((~same_set).sum()),
        "torch_gap_5th_6th_median_on_disagreements": (
            round(float(np.median(gap[~same_set])), 6) if (~same_set).any() else None
        ),
        "passes_98_rule": share >= AGREEMENT_RULE,
    }


def latencies(
    encoders: dict[str, tuple[Callable[[], None], Callable[[Sequence[str]], Any]]],
    queries: list[str],
    rounds: int,
    block: int,
) -> dict[str, dict[str, float]]:
    """Single-query latency (ms) per encoder. Encoders take turns in blocks, starting with a different one each
    round, so load from other processes on a shared machine falls on all of them alike."""
    names = list(encoders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: first calls allocate arenas and thread pools
        setup, encode = encoders[name]
        setup()
        for query in queries[:10]:
            encode([query])
    position = 0
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            setup, encode = encoders[name]
            setup()
            for i in range(block):
                query = queries[(position + i) % len(queries)]
                started = time.perf_counter()
                encode([query])
                samples[name].append((time.perf_counter() - started) * 1000)
        position += block
    return {name: {**_percentiles(values), "n": len(values)} for name, values in samples.items()}


def _cold_start(code: str) -> float:
    """Seconds for a fresh interpreter to import, load and encode one query (what an API worker pays at start)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    return round(time.perf_counter() - started, 2)


def _folder_bytes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.suffix == ".onnx"}


def compare_encoders(
    *,
    chunks: int = 10_000,
    queries: int = 300,
    cache_dir: Path | None = None,
    latency_rounds: int = 8,
    latency_block: int = 40,
    cold_start: bool = True,
) -> dict[str, Any]:
    """Agreement of the ONNX encoders' top-5 with the torch encoder's, and their latencies; see the module doc.

    ``cache_dir`` defaults to a fresh temporary folder, so the export is timed (and removed afterwards).
    """
    import onnx
    import onnxruntime  # type: ignore[import-untyped]
    import torch

    temporary = cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="twin-onnx-")) if cache_dir is None else cache_dir
    try:
        default_threads = torch.get_num_threads()
        torch_encoder = SentenceEmbedder()

        started = time.perf_counter()
        fp32 = OnnxEmbedder(cache_dir=cache, intra_op_num_threads=1)
        fp32_seconds = time.perf_counter() - started
        started = time.perf_counter()
        int8 = OnnxEmbedder(cache_dir=cache, intra_op_num_threads=1, quantized=True)
        int8_seconds = time.perf_counter() - started
        started = time.perf_counter()
        OnnxEmbedder(cache_dir=cache, intra_op_num_threads=1, quantized=True)
        reuse_seconds = time.perf_counter() - started

        texts = corpus_texts(chunks)
        query_texts = benchmark_queries(queries)
        started = time.perf_counter()
        corpus = torch_encoder.encode(texts)
        corpus_seconds = time.perf_counter() - started
        # Queries one at a time, as the API encodes them (no padding in play).
        ref_vectors = np.vstack([torch_encoder.encode([q]) for q in query_texts])
        reference, ref_scores = top_k(ref_vectors, corpus)
        results: dict[str, Any] = {}
        for name, encoder in (("onnx_fp32", fp32), ("onnx_int8", int8)):
            vectors = np.vstack([encoder.encode([q]) for q in query_texts])
            results[name] = agreement(reference, top_k(vectors, corpus)[0], ref_vectors, vectors, ref_scores)

        def threads(n: int) -> Callable[[], None]:
            return lambda: torch.set_num_threads(n)

        def nothing() -> None:
            return None

        timing = latencies(
            {
                "torch_1_thread": (threads(1), torch_encoder.encode),
                f"torch_{default_threads}_threads": (threads(default_threads), torch_encoder.encode),
                "onnx_fp32_1_thread": (nothing, fp32.encode),
                "onnx_int8_1_thread": (nothing, int8.encode),
            },
            query_texts,
            latency_rounds,
            latency_block,
        )
        torch.set_num_threads(default_threads)

        cold: dict[str, float] = {}
        if cold_start:
            load = "from twin_platform.adapters.{m} import {c}; e = {c}({a}); e.encode(['warm up the encoder'])"
            cold["torch"] = _cold_start(load.format(m="embedding", c="SentenceEmbedder", a=""))
            onnx_args = "cache_dir=__import__('pathlib').Path({d!r}), quantized={q}"
            for name, quantized in (("onnx_fp32", False), ("onnx_int8", True)):
                code = load.format(m="onnx_encoder", c="OnnxEmbedder", a=onnx_args.format(d=str(cache), q=quantized))
                cold[name] = _cold_start(code)
            # A worker that finds no cache pays the export once, torch and transformers imports included.
            with tempfile.TemporaryDirectory(prefix="twin-onnx-cold-") as empty:
                code = load.format(m="onnx_encoder", c="OnnxEmbedder", a=onnx_args.format(d=empty, q=False))
                cold["onnx_fp32_first_use_exporting"] = _cold_start(code)

        return {
            "machine": {"cpus": os.cpu_count(), "shared": "yes: other work ran during the measurement"},
            "versions": {
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
                "onnx": onnx.__version__,
                "exporter": "torch.onnx.export(dynamo=False), TorchScript-based",
            },
            "model_id": fp32.model_id,
            "corpus": {"chunks": len(texts), "torch_encode_seconds": round(corpus_seconds, 1)},
            "queries": len(query_texts),
            "rule": f"top-5 identical to torch on >= {AGREEMENT_RULE:.0%} of queries",
            "agreement": results,
            "latency_ms": timing,
            "export": {
                "fp32_export_seconds": fp32.export_seconds.get("model.onnx"),
                "int8_quantize_seconds": int8.export_seconds.get("model.int8.onnx"),
                "first_construction_seconds": {"fp32": round(fp32_seconds, 2), "int8": round(int8_seconds, 2)},
                "construction_from_cache_seconds": round(reuse_seconds, 2),
                "cache_bytes": _folder_bytes(fp32.folder),
            },
            "cold_start_seconds": cold,
        }
    finally:
        if temporary:
            shutil.rmtree(cache, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run :func:`compare_encoders` and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--cache-dir", type=Path, default=None, help="reuse exports here (default: a temporary one)")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the fresh-interpreter start-up timing")
    args = parser.parse_args(argv)
    result = compare_encoders(
        chunks=args.chunks, queries=args.queries, cache_dir=args.cache_dir, cold_start=not args.no_cold_start
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
