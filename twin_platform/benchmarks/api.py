"""RAG API benchmark: /v1/search latency and throughput under concurrent clients, against a bare loop.

A scratch database gets ``size`` synthetic chunks (real embeddings of demo sentences plus noise, real
text for full-text search); the API runs as its own process (``twin api``) and load comes from
asyncio clients on this machine. Prints JSON.

    twin bench api [--chunks 10000,100000] [--clients 1,8,32] [--seconds 60]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
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
from twin_platform.adapters.postgres.search import PostgresSearchIndex
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
def api_process(database_url: str, llm_url: str, data_dir: Path) -> Iterator[str]:
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
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


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


def bare_loop(engine: Engine, embedder: Any, queries: list[str], seconds: float) -> dict[str, Any]:
    index = PostgresSearchIndex(engine)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    i = 0
    while time.monotonic() < deadline:
        t = time.perf_counter()
        hybrid_search(queries[i % len(queries)], index, embedder, SearchFilters(), k=5)
        latencies.append((time.perf_counter() - t) * 1000)
        i += 1
    return {
        "requests_per_s": round(len(latencies) / (time.monotonic() - started), 1),
        "latency_ms": _percentiles99(latencies),
    }


def run(
    sizes: tuple[int, ...] = (10_000, 100_000),
    clients: tuple[int, ...] = (1, 8, 32),
    seconds: float = 60.0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings()
    embedder = load_embedder(settings.embedding_model)
    embedder.encode(["warm up"] * 4)
    queries = [s[:120] for s in _sentences()[::3]][:300]
    report: dict[str, Any] = {"seconds_per_run": seconds, "machine": {"cpus": os.cpu_count()}, "sizes": []}
    for size in sizes:
        with scratch_database(settings) as engine, instant_llm() as llm_url:
            load_chunks(engine, embedder, size)
            url = engine.url.render_as_string(hide_password=False)
            entry: dict[str, Any] = {"chunks": size, "bare_loop": bare_loop(engine, embedder, queries, seconds)}
            with api_process(url, llm_url, settings.data_path) as api:
                entry["search"] = [asyncio.run(_load(api, "/v1/search", queries, c, seconds)) for c in clients]
                rag = asyncio.run(_load(api, "/v1/rag", queries, 1, min(seconds, 20)))
                search_single = entry["search"][0]["latency_ms"]["p50"]
                entry["rag_single_client"] = rag
                entry["rag_overhead_over_search_ms_p50"] = round(rag["latency_ms"]["p50"] - search_single, 2)
            best = max(run["requests_per_s"] for run in entry["search"])
            entry["api_to_bare_loop_throughput"] = round(best / entry["bare_loop"]["requests_per_s"], 3)
            report["sizes"].append(entry)
    first = report["sizes"][0]
    eight = next((r for r in first["search"] if r["clients"] == 8), first["search"][-1])
    report["goals"] = {
        "search_p95_ms_at_8_clients<50 (first size)": eight["latency_ms"]["p95"] < 50,
        "api_throughput>=0.7x_bare_loop": all(s["api_to_bare_loop_throughput"] >= 0.7 for s in report["sizes"]),
        "zero_errors": all(r["errors"] == 0 for s in report["sizes"] for r in s["search"]),
    }
    return report
