"""Feature-pipeline benchmark: throughput, model-bound ratio, refresh cost, HNSW recall and latency.

Runs in a scratch database created on the configured server (embedded by default) and dropped at
the end. Prints one JSON document.

    twin bench features [--docs 300] [--handbook PATH] [--vectors 10000,100000] [--queries 200]
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy import Engine, make_url

from twin_platform.adapters.embedding import load_embedder
from twin_platform.adapters.postgres.authors import PostgresAuthorRegistry
from twin_platform.adapters.postgres.database import database_url, make_engine, upgrade
from twin_platform.adapters.postgres.features import PostgresFeatureStore
from twin_platform.adapters.warehouse.postgres import PostgresWarehouse
from twin_platform.collection.ingest import import_path
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform, RawDocument
from twin_platform.domain.ports import DocumentQuery
from twin_platform.features.chunking import ChunkingOptions
from twin_platform.features.cleaning import CleaningOptions
from twin_platform.features.pipeline import refresh_chunks, refresh_cleaned, refresh_embeddings
from twin_platform.settings import Settings

DEMO_CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"


@contextmanager
def scratch_database(settings: Settings) -> Iterator[Engine]:
    base = make_url(database_url(settings))
    name = f"twin_bench_{uuid.uuid4().hex[:8]}"
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = make_engine(base.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def synthetic_corpus(documents: int, seed: int = 7) -> list[RawDocument]:
    """Articles and posts assembled from the demo corpus's real sentences, in shuffled order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    sentences = [
        s.strip() + "."
        for path in sorted(DEMO_CORPUS.rglob("*.md"))
        for s in path.read_text().split("---", 2)[-1].replace("\n", " ").split(". ")
        if len(s.split()) > 4 and "```" not in s
    ]
    corpus = []
    for n in range(documents):
        is_post = n % 4 == 0
        paragraphs = [
            " ".join(rng.sample(sentences, rng.randint(2, 5))) for _ in range(1 if is_post else rng.randint(6, 14))
        ]
        corpus.append(
            RawDocument(
                author_id="bench-author",
                category=Category.POST if is_post else Category.ARTICLE,
                platform=Platform.WEB,
                source_url=f"https://bench.example.com/{n}",
                title=f"Synthetic document {n}",
                content="\n\n".join(paragraphs),
            )
        )
    return corpus


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def pipeline_run(engine: Engine, author_id: str, embedder: Any) -> dict[str, float]:
    warehouse, store = PostgresWarehouse(engine), PostgresFeatureStore(engine)
    options = ChunkingOptions(max_tokens=embedder.max_tokens)
    t_clean, cleaned = _time(lambda: refresh_cleaned(author_id, warehouse, store, CleaningOptions()))
    t_chunk, _ = _time(lambda: refresh_chunks(author_id, store, embedder.count_tokens, options))
    t_embed, embedded = _time(lambda: refresh_embeddings(author_id, store, embedder))
    return {
        "seconds": t_clean + t_chunk + t_embed,
        "clean_s": t_clean,
        "chunk_s": t_chunk,
        "embed_s": t_embed,
        "documents": cleaned.cleaned,
        "chunks": embedded.embedded,
    }


def bare_encode_seconds(engine: Engine, author_id: str, embedder: Any) -> float:
    with engine.connect() as conn:
        texts = [
            r.text
            for r in conn.execute(sa.text("SELECT text FROM chunks WHERE author_id = :a ORDER BY id"), {"a": author_id})
        ]
    seconds, _ = _time(lambda: embedder.encode(texts))
    return seconds


def corpus_benchmark(engine: Engine, author_id: str, embedder: Any) -> dict[str, Any]:
    full = pipeline_run(engine, author_id, embedder)
    encode_s = bare_encode_seconds(engine, author_id, embedder)
    warehouse = PostgresWarehouse(engine)
    documents = warehouse.find(DocumentQuery(author_id=author_id))
    changed = documents[: max(1, len(documents) // 100)]
    warehouse.upsert_many(
        [d.model_copy(update={"content": d.content + "\n\nAn edited closing paragraph."}) for d in changed]
    )
    refresh = pipeline_run(engine, author_id, embedder)
    noop = pipeline_run(engine, author_id, embedder)
    pipeline_cps = full["chunks"] / full["seconds"]
    encode_cps = full["chunks"] / encode_s
    return {
        "documents": full["documents"],
        "chunks": full["chunks"],
        "full_run_s": round(full["seconds"], 2),
        "stage_s": {k: round(full[k], 2) for k in ("clean_s", "chunk_s", "embed_s")},
        "documents_per_s": round(full["documents"] / full["seconds"], 2),
        "chunks_per_s": round(pipeline_cps, 2),
        "bare_encode_chunks_per_s": round(encode_cps, 2),
        "pipeline_to_encode_ratio": round(pipeline_cps / encode_cps, 3),
        "refresh_1pct": {
            "documents_changed": len(changed),
            "chunks_embedded": refresh["chunks"],
            "seconds": round(refresh["seconds"], 3),
            "cost_vs_full_run": round(refresh["seconds"] / full["seconds"], 4),
        },
        "noop_run_s": round(noop["seconds"], 3),
    }


def hnsw_benchmark(engine: Engine, embedder: Any, size: int, queries: int, seed: int = 11) -> dict[str, Any]:
    """Recall@10 of the HNSW index against exact search, and query latency, on ``size`` vectors.

    Vectors are real embeddings of demo sentences, each copied with noise into ``size`` points, so
    they cluster like real chunks do (uniform random vectors would be an unrealistically hard case).
    """
    rng = np.random.default_rng(seed)
    sentences = [s for p in sorted(DEMO_CORPUS.rglob("*.md")) for s in p.read_text().split("\n") if len(s.split()) > 6]
    base = embedder.encode(sentences[:400])
    picks = rng.integers(0, len(base), size)
    vectors = base[picks] + rng.normal(0, 0.06, (size, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS bench_vectors"))
        conn.execute(sa.text(f"CREATE TABLE bench_vectors (id int PRIMARY KEY, embedding vector({base.shape[1]}))"))
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as loader, loader.cursor() as cursor:
        with cursor.copy("COPY bench_vectors (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, "[" + ",".join(f"{x:.6f}" for x in v) + "]"))
        loader.commit()
    build_s, _ = _time(lambda: _build_index(engine))
    query_vectors = base[rng.integers(0, len(base), queries)] + rng.normal(0, 0.06, (queries, base.shape[1]))
    query_vectors = (query_vectors / np.linalg.norm(query_vectors, axis=1, keepdims=True)).astype(np.float32)
    exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :10]
    recalls, latencies, exact_latencies = [], [], []
    # No prepared statements: a prepared plan would ignore the later enable_indexscan = off.
    with psycopg.connect(url, prepare_threshold=None) as pg:
        pg.execute("SET hnsw.ef_search = 100")
        for q, truth in zip(query_vectors, exact, strict=True):
            literal = "[" + ",".join(f"{x:.6f}" for x in q) + "]"
            started = time.perf_counter()
            rows = pg.execute(
                "SELECT id FROM bench_vectors ORDER BY embedding <=> %s::vector LIMIT 10", (literal,)
            ).fetchall()
            latencies.append((time.perf_counter() - started) * 1000)
            recalls.append(len({r[0] for r in rows} & set(truth.tolist())) / 10)
        pg.execute("SET enable_indexscan = off")
        for q in query_vectors[: min(20, queries)]:
            literal = "[" + ",".join(f"{x:.6f}" for x in q) + "]"
            started = time.perf_counter()
            pg.execute(
                "SELECT id FROM bench_vectors ORDER BY embedding <=> %s::vector LIMIT 10 /* exact */", (literal,)
            ).fetchall()
            exact_latencies.append((time.perf_counter() - started) * 1000)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE bench_vectors"))
    return {
        "vectors": size,
        "index_build_s": round(build_s, 2),
        "recall_at_10": round(statistics.mean(recalls), 4),
        "hnsw_ef_search": 100,
        "query_ms": _percentiles(latencies),
        "exact_scan_query_ms": _percentiles(exact_latencies),
    }


def _build_index(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("CREATE INDEX ON bench_vectors USING hnsw (embedding vector_cosine_ops)"))


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 3),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
        "mean": round(statistics.mean(ordered), 3),
    }


def run(
    documents: int = 300,
    handbook: Path | None = None,
    vector_sizes: tuple[int, ...] = (10_000, 100_000),
    queries: int = 200,
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings()
    embedder = load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    embedder.encode(["warm up the model before anything is timed"] * 8)
    report: dict[str, Any] = {"model": embedder.model_id, "machine": {"cpus": _cpus()}}
    with scratch_database(settings) as engine:
        PostgresAuthorRegistry(engine).save(Author(full_name="Bench Author"))
        PostgresWarehouse(engine).upsert_many(synthetic_corpus(documents))
        report["generated_corpus"] = corpus_benchmark(engine, "bench-author", embedder)
        if handbook is not None and handbook.is_dir():
            authors = PostgresAuthorRegistry(engine)
            import_path(handbook, warehouse=PostgresWarehouse(engine), authors=authors, max_bytes=50_000_000)
            runs = [corpus_benchmark(engine, a.id, embedder) for a in authors.list() if a.id != "bench-author"]
            report["handbook"] = _combine(runs)
        report["hnsw"] = [hnsw_benchmark(engine, embedder, size, queries) for size in vector_sizes]
    report["goals"] = {
        "pipeline_to_encode_ratio>=0.85": report["generated_corpus"]["pipeline_to_encode_ratio"] >= 0.85,
        "refresh_1pct_cost<=0.05": report["generated_corpus"]["refresh_1pct"]["cost_vs_full_run"] <= 0.05,
    }
    return report


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    documents = sum(r["documents"] for r in runs)
    chunks = sum(r["chunks"] for r in runs)
    seconds = sum(r["full_run_s"] for r in runs)
    encode_s = sum(r["chunks"] / r["bare_encode_chunks_per_s"] for r in runs)
    refresh_s = sum(r["refresh_1pct"]["seconds"] for r in runs)
    return {
        "documents": documents,
        "chunks": chunks,
        "full_run_s": round(seconds, 2),
        "documents_per_s": round(documents / seconds, 2),
        "chunks_per_s": round(chunks / seconds, 2),
        "pipeline_to_encode_ratio": round((chunks / seconds) / (chunks / encode_s), 3),
        "refresh_1pct_cost_vs_full_run": round(refresh_s / seconds, 4),
        "per_author": runs,
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
