"""RAG API benchmark: /v1/search latency and throughput under concurrent clients, against a bare loop.

A scratch database gets ``size`` synthetic chunks (real embeddings of demo sentences plus noise, real
text for full-text search); the API runs as its own processes (``twin api --workers N``) and load comes
from asyncio clients on this machine. The baselines are *bare loops*: the same hybrid search (same SQL)
called directly, no HTTP, no auth, no logging, each in a process of its own. Prints JSON.

    twin bench api [--chunks 10000,100000] [--clients 1,8,32] [--seconds 60] [--workers N]

The goals compare with the *reference* loop (the query encoder on torch, as the goals were set): a faster
query encoder is one of the ways to them. The ratios against the loop with the API's own encoder, alone and
at equal concurrency, say what the HTTP layer, auth, rate limits and logging cost on top.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy import Engine

from twin_platform.adapters.embedding import load_embedder
from twin_platform.adapters.postgres.database import make_engine
from twin_platform.adapters.postgres.search import PostgresSearchIndex
from twin_platform.adapters.query_encoder import query_embedder
from twin_platform.benchmarks.features import DEMO_CORPUS, _percentiles, scratch_database
from twin_platform.domain.retrieval import SearchFilters
from twin_platform.rag.search import hybrid_search
from twin_platform.settings import Settings


def _sentences() -> list[str]:
    return [
        line.strip()
        for p in sorted(DEMO_CORPUS.rglob("*.md"))
        for line in p.read_text().split("\n")
        if len(line.split()) > 6 and not line.startswith(("---", "```", "title:", "canonical_url:"))
    ]


def load_chunks(engine: Engine, embedder: Any, size: int, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    sentences = _sentences()
    base = embedder.encode(sentences[:400])
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    documents = max(1, size // 50)
    doc_ids = [uuid.uuid4() for _ in range(documents)]
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO authors (id, full_name) VALUES ('bench-author', 'Bench Author')")
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY cleaned_documents (id, author_id, category, platform, source_url, title, text, raw_version, "
                "source_key) FROM STDIN"
            ) as copy,
        ):
            for i, doc in enumerate(doc_ids):
                copy.write_row(
                    (doc, "bench-author", "article", "web", f"https://bench.example/{i}", f"Doc {i}", "-", 1, "bench")
                )
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY chunks (id, document_id, author_id, platform, category, source_url, title, chunk_index, text, "
                "token_count, embedding, embedding_model) FROM STDIN"
            ) as copy,
        ):
            for i in range(size):
                pick = int(rng.integers(0, len(base)))
                vector = base[pick] + rng.normal(0, 0.06, base.shape[1])
                vector /= np.linalg.norm(vector)
                text = " ".join(random.Random(i).sample(sentences, 3))  # noqa: S311 - test data
                copy.write_row(
                    (
                        uuid.uuid4(),
                        doc_ids[i % documents],
                        "bench-author",
                        "web",
                        "article",
                        f"https://bench.example/{i % documents}",
                        f"Doc {i % documents}",
                        i,
                        text,
                        120,
                        "[" + ",".join(f"{x:.6f}" for x in vector) + "]",
                        embedder.model_id,
                    )
                )
        conn.execute("ANALYZE chunks")
        conn.commit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def instant_llm() -> Iterator[str]:
    """An OpenAI-compatible endpoint that answers at once, to measure the server minus generation."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(
                {
                    "id": "b",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "instant",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self.do_POST()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def api_process(database_url: str, llm_url: str, data_dir: Path, workers: int = 1) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "TWIN_DATABASE_URL": database_url,
        "TWIN_API_PORT": str(port),
        "TWIN_API_HOST": "127.0.0.1",
        "TWIN_API_AUTH_DISABLED": "true",
        "TWIN_API_RATE_LIMIT_PER_MINUTE": "100000000",
        "TWIN_LLM_BACKEND": "openai",
        "TWIN_LLM_URL": llm_url,
        "TWIN_LLM_MODEL": "instant",
        "TWIN_LLM_MAX_CONCURRENT": "64",
        "TWIN_DATA_DIR": str(data_dir),
        "TWIN_API_WORKERS": str(workers),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "twin_platform.cli.main", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the API did not become ready")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the uvicorn supervisor and its workers
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _load(
    url: str, path: str, queries: list[str], clients: int, seconds: float, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post(path, json={"query": queries[i % len(queries)], "k": 5, **(body or {})})
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors += 1
                i += clients

        started = time.monotonic()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": _percentiles99(latencies),
    }


def _percentiles99(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    stats = _percentiles(ordered)
    stats["p99"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3)
    return stats


def _bare_worker(
    url: str, env: dict[str, str], encoder: str, queries: list[str], seconds: float, ready: Any, go: Any, results: Any
) -> None:
    """One bare-loop process: hybrid search in a loop with ``encoder`` (``torch``: sentence-transformers with
    torch's default threads, the reference; ``api``: the API's query encoder on one thread)."""
    os.environ.update(env)
    settings = Settings()
    embedder: Any
    if encoder == "torch":
        embedder = load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    else:
        import torch

        torch.set_num_threads(1)
        embedder = query_embedder(settings, threads=1)
    embedder.encode(["warm up"] * 4)
    engine = make_engine(url)
    index = PostgresSearchIndex(engine)
    hybrid_search(queries[0], index, embedder, SearchFilters(), k=5)
    ready.wait()
    go.wait()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        hybrid_search(queries[i % len(queries)], index, embedder, SearchFilters(), k=5)
        latencies.append((time.perf_counter() - started) * 1000)
        i += 1
    engine.dispose()
    results.put(latencies)


def bare_loop(url: str, queries: list[str], seconds: float, processes: int = 1, encoder: str = "api") -> dict[str, Any]:
    """The bare loop in ``processes`` processes at once (each sequential); their summed throughput."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Barrier(processes + 1), context.Event(), context.Queue()
    env = {k: v for k, v in os.environ.items() if k.startswith("TWIN_")}
    workers = [
        context.Process(
            target=_bare_worker, args=(url, env, encoder, queries[p::processes], seconds, ready, go, results)
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.monotonic()
    go.set()
    latencies = [ms for _ in workers for ms in results.get(timeout=seconds + 300)]
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.join(30)
    return {
        "processes": processes,
        "encoder": encoder,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": _percentiles99(latencies),
    }


def run(
    sizes: tuple[int, ...] = (10_000, 100_000),
    clients: tuple[int, ...] = (1, 8, 32),
    seconds: float = 60.0,
    workers: int | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings()
    cores = os.cpu_count() or 1
    workers = workers or cores
    embedder = load_embedder(settings.embedding_model)
    queries = [s[:120] for s in _sentences()[::3]][:300]
    concurrency = min(max(clients), cores)
    report: dict[str, Any] = {
        "seconds_per_run": seconds,
        "machine": {"cpus": cores},
        "api_workers": workers,
        "query_encoder": settings.embedding_query_backend,
        "baselines": {
            "bare_loop_reference": "hybrid search in a sequential loop, sentence-transformers on torch (default "
            "threads): the loop the goals were set against",
            "bare_loop_single_thread": "the same loop with the API's query encoder, one thread",
            "bare_loop_equal_concurrency": "that loop in one process per client, capped by the cores",
        },
        "sizes": [],
    }
    for size in sizes:
        with scratch_database(settings) as engine, instant_llm() as llm_url:
            load_chunks(engine, embedder, size)
            url = engine.url.render_as_string(hide_password=False)
            reference = bare_loop(url, queries, seconds, 1, encoder="torch")
            single = bare_loop(url, queries, seconds, 1)
            parallel = bare_loop(url, queries, seconds, concurrency)
            entry: dict[str, Any] = {
                "chunks": size,
                "bare_loop_reference": reference,
                "bare_loop_single_thread": single,
                "bare_loop_equal_concurrency": parallel,
            }
            with api_process(url, llm_url, settings.data_path, workers) as api:
                entry["search"] = [asyncio.run(_load(api, "/v1/search", queries, c, seconds)) for c in clients]
                rag = asyncio.run(_load(api, "/v1/rag", queries, 1, min(seconds, 20)))
            one = entry["search"][0]
            eight = next((r for r in entry["search"] if r["clients"] == 8), entry["search"][-1])
            entry["rag_single_client"] = rag
            entry["rag_overhead_over_search_ms_p50"] = round(rag["latency_ms"]["p50"] - one["latency_ms"]["p50"], 2)

            def ratio(a: float, b: float) -> float:
                return round(a / b, 3)

            entry["ratios"] = {
                "throughput_8_clients_vs_reference": ratio(eight["requests_per_s"], reference["requests_per_s"]),
                "throughput_8_clients_vs_single_thread": ratio(eight["requests_per_s"], single["requests_per_s"]),
                "throughput_8_clients_vs_equal_concurrency": ratio(eight["requests_per_s"], parallel["requests_per_s"]),
                "p50_1_client_vs_reference": ratio(one["latency_ms"]["p50"], reference["latency_ms"]["p50"]),
                "p50_1_client_vs_single_thread": ratio(one["latency_ms"]["p50"], single["latency_ms"]["p50"]),
            }
            entry["goals"] = {
                "throughput_8_clients>=1.8x_reference": entry["ratios"]["throughput_8_clients_vs_reference"] >= 1.8,
                "p95_8_clients<150ms": eight["latency_ms"]["p95"] < 150,
                "p50_1_client<=1.1x_reference": entry["ratios"]["p50_1_client_vs_reference"] <= 1.1,
                "zero_errors": all(r["errors"] == 0 for r in entry["search"]) and rag["errors"] == 0,
            }
            report["sizes"].append(entry)
    return report
