"""Retrieval benchmark: the RAG pipeline's retrieval, scored on per-author question sets over a grid of settings.

Everything runs in a scratch database on the configured server (dropped at the end): the demo author
(imported as ``twin demo`` does) and, with ``handbook``, every author of the LLM Engineer's Handbook export
(the platform's own importer), cleaned, chunked and embedded by the feature pipeline.

Questions come from each author's held-out documents: the passages the instruction dataset would put in its
test split (same passages, rules, dedupe and split by document). Kinds, each scored on its own:

- ``llm``: the instruction the dataset generator (``TWIN_LLM_BACKEND``; locally the base model) writes for the
  passage, as in the instruction dataset, cached per passage in the same file the ``instruction_dataset``
  asset uses, so a second run (or a run after the asset) generates nothing. At most ``max_generated``
  passages per author go to the generator (10 to 20 s each for the local 135M model on 2 shared cores).
- ``title``: a deterministic question without an LLM (``title_questions``: document title + the passage's
  most distinctive words). Lexical by construction: it flatters full-text search.
- ``user_file``: ``$TWIN_DATA_DIR/eval/<author>/questions.jsonl`` when it exists.

The grid, one factor at a time around the defaults (always included): chunk target/overlap (each re-chunks
and re-embeds every author, with the default retrieval settings); candidates per leg x fusion (RRF with its
k0, dense only, full text only) at the default chunking; query expansion (LLM rephrasings) on the first
questions of each author; reranking when ``TWIN_RERANKER_MODEL`` names a cross-encoder. Every variant runs
``RAGPipeline.retrieve`` and ``RAGPipeline.prompt`` as the API does; other fusions swap the index the pipeline
reads for one that returns that fusion's list (a single list keeps its order through the pipeline's own RRF).
Each variant's difference from the default comes with a paired bootstrap 95% interval over the questions.

    twin bench retrieval [--handbook PATH] [--chunking 128:16,200:0,200:32,254:48] [--candidates 20,50,100]
                         [--fusion rrf-60,rrf-10,dense,text] [--questions llm,title] [--max-generated 12]
                         [--expansions 2] [--expansion-questions 5] [--skip-expansion]
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Engine

from twin_platform.adapters.cache import load_cache, save_cache
from twin_platform.adapters.embedding import load_embedder
from twin_platform.adapters.postgres.authors import PostgresAuthorRegistry
from twin_platform.adapters.postgres.features import PostgresFeatureStore
from twin_platform.adapters.postgres.search import PostgresSearchIndex
from twin_platform.adapters.query_encoder import query_embedder
from twin_platform.adapters.warehouse.postgres import PostgresWarehouse
from twin_platform.benchmarks.features import DEMO_CORPUS, scratch_database
from twin_platform.collection.ingest import import_path
from twin_platform.datasets.backtranslation import INSTRUCTION_PROMPT_VERSION, back_translate
from twin_platform.datasets.curation import CurationRules, deduplicate, passages, rule_filter, split_by_document
from twin_platform.domain.authors import Author
from twin_platform.domain.datasets import CurationReport, Passage, text_hash
from twin_platform.domain.features import Embedder
from twin_platform.domain.llm import GenerationParams, LLMClient
from twin_platform.domain.retrieval import Reranker, ScoredChunk, SearchFilters, SearchIndex, reciprocal_rank_fusion
from twin_platform.evaluation.questions import Question, questions_from_rows, read_question_file, title_questions
from twin_platform.evaluation.retrieval import (
    DEFINITIONS,
    QuestionResult,
    RetrievalSummary,
    evaluate_question,
    summarize,
)
from twin_platform.features.chunking import ChunkingOptions
from twin_platform.features.cleaning import CleaningOptions
from twin_platform.features.pipeline import refresh_chunks, refresh_cleaned, refresh_embeddings
from twin_platform.rag.pipeline import RAGPipeline
from twin_platform.rag.search import HYBRID_RRF_K0
from twin_platform.settings import Settings

DEMO_AUTHOR = Author(full_name="Mara Ellison", aliases=("M. Ellison",))  # as `twin demo` registers her
DEFAULT_CANDIDATES = 50  # RAGPipeline's (the API does not change it)
DEFAULT_FUSION = f"rrf-{HYBRID_RRF_K0}"  # hybrid_search's reciprocal rank fusion
K = 10
KINDS = ("llm", "title")
DELTA_METRICS = ("mrr", "passage_mrr", "context_recall")
BOOTSTRAP_ROUNDS = 2000
Log = Callable[[str], None]


@dataclass(frozen=True)
class Chunking:
    target: int
    overlap: int

    @property
    def label(self) -> str:
        return f"{self.target}:{self.overlap}"


@dataclass(frozen=True)
class Variant:
    chunking: Chunking
    candidates: int = DEFAULT_CANDIDATES
    fusion: str = DEFAULT_FUSION
    rerank: bool = False

    @property
    def label(self) -> str:
        return f"chunks {self.chunking.label}, {self.candidates} candidates, {self.fusion}" + (
            ", reranked" if self.rerank else ""
        )

    def describe(self) -> dict[str, Any]:
        return {
            "chunking": self.chunking.label,
            "candidates": self.candidates,
            "fusion": self.fusion,
            "rerank": self.rerank,
        }


def parse_fusion(name: str) -> str:
    """``rrf-<k0>``, ``dense`` or ``text``; raises ValueError otherwise."""
    if name in {"dense", "text"}:
        return name
    if name.startswith("rrf-") and name[4:].isdigit() and int(name[4:]) > 0:
        return name
    raise ValueError(f"unknown fusion {name!r}: use rrf-<k0> (e.g. rrf-60), dense or text")


class FusionIndex:
    """The search index with another fusion of its two legs, handed to the pipeline as its only list."""

    def __init__(self, inner: SearchIndex, fusion: str) -> None:
        self.inner = inner
        self.fusion = parse_fusion(fusion)

    def candidates(
        self, vector: npt.NDArray[np.float32], model_id: str, query: str, filters: SearchFilters, k: int
    ) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
        dense, text = self.inner.candidates(vector, model_id, query, filters, k)
        if self.fusion == "dense":
            return dense, []
        if self.fusion == "text":
            return text, []
        return reciprocal_rank_fusion({"dense": dense, "text": text}, k0=int(self.fusion[4:]))[:k], []


class MemoEmbedder:
    """The query encoder, remembering each text's vector: every variant asks the same questions."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.inner.encode(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])


@dataclass
class AuthorSet:
    """One author's held-out passages and the questions of each kind."""

    author: Author
    documents: int
    test_documents: int
    test_passages: list[Passage]
    kept_passages: list[Passage]  # every curated passage, both sides (the title questions' reference corpus)
    questions: dict[str, list[Question]] = dataclasses.field(default_factory=dict)
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)


def held_out_passages(
    author: Author, store: PostgresFeatureStore, count: Callable[[Sequence[str]], list[int]], rules: CurationRules
) -> AuthorSet:
    """The passages the instruction dataset would hold out (rules, dedupe, split by document), in order."""
    documents = store.cleaned_documents(author.id)
    report = CurationReport()
    kept = rule_filter(passages(documents, count, rules.max_tokens), rules, report)
    kept = deduplicate(kept, lambda p: p.text, rules.near_threshold, report)
    sides = split_by_document((p.document_id for p in kept), rules.test_fraction)
    test = [p for p in kept if sides[p.document_id] == "test"]
    return AuthorSet(
        author=author,
        documents=len(documents),
        test_documents=len({p.document_id for p in test}),
        test_passages=test,
        kept_passages=kept,
        dropped=dict(report.dropped),
    )


def _spread(items: Sequence[Passage], limit: int) -> list[Passage]:
    """At most ``limit`` passages, chosen by id (a hash): spread over the documents, the same every run."""
    return sorted(items, key=lambda p: p.id)[:limit] if limit and len(items) > limit else list(items)


def generated_questions(
    sets: Sequence[AuthorSet], settings: Settings, base: str, limit: int, log: Log
) -> dict[str, Any]:
    """Instructions for (at most ``limit`` per author) held-out passages, as the instruction dataset writes
    them, through its per-passage cache; adds the ``llm`` questions to each set; returns what it cost."""
    from twin_platform.adapters.llm.factory import dataset_generator

    generator = _generator_id(settings, base)
    params = GenerationParams(max_tokens=settings.dataset_instruction_max_tokens, temperature=0.7, top_p=0.9)
    generate = dataset_generator(settings, base, lambda done, total: log(f"  instructions written: {done}/{total}"))
    started = time.perf_counter()
    cached = generated = 0
    for entry in sets:
        chosen = _spread(entry.test_passages, limit)
        cache_file = _instruction_cache(settings, entry.author.id, generator)
        cache = load_cache(cache_file)
        todo = sum(1 for p in chosen if p.id not in cache)
        cached, generated = cached + len(chosen) - todo, generated + todo
        log(f"{entry.author.id}: {len(chosen)} held-out passages to questions, {todo} to generate")
        report = CurationReport(candidates=len(chosen))
        try:
            samples = back_translate(chosen, generate, params, report, cache)
        finally:
            save_cache(cache_file, cache)
        samples = deduplicate(samples, lambda s: s.instruction, 0.95, report)  # as build_instructions does
        entry.questions["llm"] = questions_from_rows(dataclasses.replace(s, split="test").as_row() for s in samples)
        entry.dropped |= {f"llm_{reason}": n for reason, n in report.dropped.items()}
    return {
        "generator": generator,
        "prompt_version": INSTRUCTION_PROMPT_VERSION,
        "max_passages_per_author": limit,
        "from_cache": cached,
        "generated": generated,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _generator_id(settings: Settings, base: str) -> str:
    """The generator's name in the instruction cache's namespace (as the instruction_dataset asset names it)."""
    if settings.llm_backend != "local":
        return f"{settings.llm_backend}:{settings.llm_model or settings.llm_url}"
    meta = Path(base) / "twin_model.json"
    return "local:" + (str(json.loads(meta.read_text()).get("model_id", base)) if meta.exists() else base)


def _instruction_cache(settings: Settings, author_id: str, generator: str) -> Path:
    """The file the instruction_dataset asset caches this author's instructions in, for this prompt and
    generator: either one fills it for the other."""
    key = text_hash(f"{INSTRUCTION_PROMPT_VERSION}|{generator}")
    return settings.data_path / "cache" / "instructions" / author_id / f"{key}.json"


def _bootstrap(default: npt.NDArray[np.float64], variant: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Mean paired difference (variant - default) and its 95% bootstrap interval over the questions."""
    differences = variant - default
    rng = np.random.default_rng(0)
    means = differences[rng.integers(0, len(differences), (BOOTSTRAP_ROUNDS, len(differences)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"delta": round(float(differences.mean()), 4), "ci95": [round(float(low), 4), round(float(high), 4)]}


def _per_question(results: Sequence[QuestionResult], metric: str) -> npt.NDArray[np.float64]:
    if metric == "mrr":
        return np.array([r.reciprocal_rank() for r in results])
    if metric == "passage_mrr":
        return np.array([r.reciprocal_rank(passage=True) for r in results if r.has_passage])
    return np.array([r.context_recall for r in results if r.context_recall is not None])


def compare(default: Sequence[QuestionResult], variant: Sequence[QuestionResult]) -> dict[str, Any]:
    """Paired differences from the default on the same questions, per metric."""
    out = {}
    for metric in DELTA_METRICS:
        before, after = _per_question(default, metric), _per_question(variant, metric)
        if len(before) and len(before) == len(after):
            out[metric] = _bootstrap(before, after)
    return out


class Bench:
    """The scratch database's authors and indexes, and the pipelines that run on them."""

    def __init__(
        self,
        settings: Settings,
        index: PostgresSearchIndex,
        encoder: MemoEmbedder,
        authors: list[Author],
        self_query_llm: LLMClient | None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.encoder = encoder
        self.authors = authors
        self.self_query_llm = self_query_llm

    def pipeline(
        self, variant: Variant, *, llm: LLMClient | None = None, reranker: Reranker | None = None
    ) -> RAGPipeline:
        index: SearchIndex = self.index if variant.fusion == DEFAULT_FUSION else FusionIndex(self.index, variant.fusion)
        return RAGPipeline(
            index=index,
            embedder=self.encoder,
            authors=lambda: self.authors,
            llm=llm or self.self_query_llm,
            reranker=reranker if variant.rerank else None,
            context_tokens=self.settings.api_context_tokens,
            candidates=variant.candidates,
            llm_self_query=self.settings.rag_llm_self_query,
        )

    def run(
        self, pipeline: RAGPipeline, sets: Sequence[AuthorSet], kind: str, *, expansions: int = 0, limit: int = 0
    ) -> dict[str, list[QuestionResult]]:
        """Each author's questions of ``kind`` (the first ``limit``, when set) through ``pipeline``."""
        return {
            entry.author.id: [
                evaluate_question(pipeline, q, author_id=entry.author.id, k=K, expansions=expansions)
                for q in (entry.questions.get(kind, [])[:limit] if limit else entry.questions.get(kind, []))
            ]
            for entry in sets
        }


def _summaries(by_author: dict[str, list[QuestionResult]]) -> dict[str, Any]:
    pooled = [r for results in by_author.values() for r in results]
    return {
        "all": summarize(pooled).model_dump(),
        "authors": {author: summarize(results).model_dump() for author, results in by_author.items()},
    }


def _pooled(by_author: dict[str, list[QuestionResult]]) -> list[QuestionResult]:
    return [r for results in by_author.values() for r in results]


def _headline(summary: RetrievalSummary) -> str:
    return (
        f"hit@1 {summary.hit_at_1}, hit@10 {summary.hit_at_10}, MRR {summary.mrr}, "
        f"passage MRR {summary.passage_mrr}, context recall {summary.context_recall}"
    )


def load_authors(
    settings: Settings, engine: Engine, handbook: Path | None, log: Log
) -> tuple[PostgresAuthorRegistry, PostgresFeatureStore]:
    """Import the demo author (and the handbook's) into the scratch database and clean their documents."""
    registry, warehouse, store = PostgresAuthorRegistry(engine), PostgresWarehouse(engine), PostgresFeatureStore(engine)
    registry.save(DEMO_AUTHOR)
    import_path(
        DEMO_CORPUS, warehouse=warehouse, authors=registry, author_name=DEMO_AUTHOR.full_name, max_bytes=5_000_000
    )
    if handbook is not None:
        import_path(handbook, warehouse=warehouse, authors=registry, max_bytes=50_000_000)
    for author in registry.list():
        report = refresh_cleaned(author.id, warehouse, store, CleaningOptions(mask_pii=settings.clean_mask_pii))
        log(f"{author.id}: {report.cleaned} documents cleaned")
    return registry, store


def index_chunks(engine: Engine, authors: Sequence[Author], embedder: Embedder, chunking: Chunking) -> dict[str, int]:
    """Re-chunk every author with ``chunking`` and embed what is new; returns chunks per author."""
    store = PostgresFeatureStore(engine)
    options = ChunkingOptions(
        max_tokens=embedder.max_tokens, target_tokens=chunking.target, overlap_tokens=chunking.overlap
    )
    for author in authors:
        refresh_chunks(author.id, store, embedder.count_tokens, options)
        refresh_embeddings(author.id, store, embedder)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT author_id, count(*) AS n FROM chunks GROUP BY author_id"))
        return dict(sorted((str(row.author_id), int(row.n)) for row in rows))


def run(
    *,
    handbook: Path | None = None,
    chunkings: Sequence[Chunking] = (Chunking(128, 16), Chunking(200, 0), Chunking(200, 32), Chunking(254, 48)),
    candidates: Sequence[int] = (20, 50, 100),
    fusions: Sequence[str] = ("rrf-10", "rrf-60", "dense", "text"),
    kinds: Sequence[str] = KINDS,
    max_generated: int = 12,
    expansions: int = 2,
    expansion_questions: int = 5,
    skip_expansion: bool = False,
    settings: Settings | None = None,
    log: Log = lambda line: None,
) -> dict[str, Any]:
    settings = settings or Settings()
    started = time.perf_counter()

    def say(line: str) -> None:
        log(f"[{time.perf_counter() - started:6.0f} s] {line}")

    default_chunking = Chunking(settings.chunk_target_tokens, settings.chunk_overlap_tokens)
    chunkings = list(dict.fromkeys([default_chunking, *chunkings]))
    candidates = sorted({DEFAULT_CANDIDATES, *candidates})
    fusions = list(dict.fromkeys([DEFAULT_FUSION, *(parse_fusion(f) for f in fusions)]))
    embedder = load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    encoder = MemoEmbedder(query_embedder(settings))
    report: dict[str, Any] = {
        "benchmark": "retrieval",
        "machine": {"cpus": _cpus()},
        "embedding_model": embedder.model_id,
        "query_encoder": settings.embedding_query_backend,
        "k": K,
        "pipeline": {
            "self_query": "llm" if settings.rag_llm_self_query else "rules",
            "context_tokens": settings.api_context_tokens,
            "request_author": "each question is asked with its author as the request's author",
        },
        "definitions": DEFINITIONS,
        "default": Variant(default_chunking).describe() | {"expansions": 0},
    }
    llm: LLMClient | None = None
    with scratch_database(settings) as engine:
        registry, store = load_authors(settings, engine, handbook, say)
        authors = registry.list()
        rules = CurationRules(
            max_tokens=settings.dataset_passage_tokens,
            min_words=settings.dataset_min_words,
            test_fraction=settings.dataset_test_fraction,
        )
        # Passages are sized in the base model's tokens, as the instruction dataset sizes them; without a
        # generator the embedding model's word pieces do (no model conversion just to count).
        base = None
        count: Callable[[Sequence[str]], list[int]] = embedder.count_tokens
        if "llm" in kinds:
            from transformers import AutoTokenizer

            from twin_platform.adapters.llm.factory import base_model

            base = base_model(settings)
            tokenizer = AutoTokenizer.from_pretrained(base)

            def base_tokens(texts: Sequence[str]) -> list[int]:
                return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

            count = base_tokens
        sets = [held_out_passages(a, store, count, rules) for a in authors]
        questions: dict[str, Any] = {
            "kinds": list(kinds),
            "passages_sized_by": "the base model's tokens" if base else "the embedding model's tokens",
        }
        if "title" in kinds:
            for entry in sets:
                entry.questions["title"] = title_questions(entry.test_passages, entry.kept_passages)
            questions["title"] = "the passage's document title and its 3 highest tf-idf words (no LLM)"
        if base is not None:
            questions["llm"] = generated_questions(sets, settings, base, max_generated, say)
        for entry in sets:
            user = read_question_file(settings.data_path / "eval" / entry.author.id / "questions.jsonl")
            if user:
                entry.questions["user_file"] = user
        kinds_run = [k for k in (*kinds, "user_file") if any(entry.questions.get(k) for entry in sets)]
        report["questions"] = questions
        report["authors"] = {
            entry.author.id: {
                "documents": entry.documents,
                "test_documents": entry.test_documents,
                "test_passages": len(entry.test_passages),
                "questions": {k: len(entry.questions.get(k, [])) for k in kinds_run},
                "dropped": entry.dropped,
            }
            for entry in sets
        }
        if settings.rag_llm_self_query:
            from twin_platform.adapters.llm.factory import build_llm

            llm = build_llm(settings)
        bench = Bench(settings, PostgresSearchIndex(engine), encoder, authors, llm)
        report["grid"], default_results, index_seconds = _grid(
            bench, engine, embedder, sets, kinds_run, chunkings, candidates, fusions, default_chunking, say
        )
        report["indexing_s"] = index_seconds
        report["expansion"] = _expansion(
            bench, sets, kinds_run, default_chunking, expansions, expansion_questions, skip_expansion, llm, say
        )
        report["rerank"] = _rerank(bench, sets, kinds_run, default_chunking, default_results, say)
    report["best"] = {
        kind: max(
            (row for row in report["grid"] if row["results"].get(kind)),
            key=lambda row: (row["results"][kind]["all"]["passage_mrr"] or 0.0, row["results"][kind]["all"]["mrr"]),
        )["variant"]
        for kind in kinds_run
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _grid(
    bench: Bench,
    engine: Engine,
    embedder: Embedder,
    sets: Sequence[AuthorSet],
    kinds: Sequence[str],
    chunkings: Sequence[Chunking],
    candidates: Sequence[int],
    fusions: Sequence[str],
    default_chunking: Chunking,
    say: Log,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[QuestionResult]]], dict[str, float]]:
    """Every chunking with the default retrieval settings; every candidates x fusion at the default chunking."""
    # The default chunking goes last, so the chunks left for the expansion and rerank runs are the default's.
    order = [c for c in chunkings if c != default_chunking] + [default_chunking]
    variants: list[tuple[Variant, dict[str, dict[str, list[QuestionResult]]]]] = []
    chunk_counts: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    for chunking in order:
        began = time.perf_counter()
        counts = chunk_counts[chunking.label] = index_chunks(engine, bench.authors, embedder, chunking)
        seconds[chunking.label] = round(time.perf_counter() - began, 1)
        say(f"chunking {chunking.label}: {sum(counts.values())} chunks in {seconds[chunking.label]} s")
        grid = (
            [Variant(chunking, c, f) for c in candidates for f in fusions]
            if chunking == default_chunking
            else [Variant(chunking)]
        )
        for variant in grid:
            pipeline = bench.pipeline(variant)
            results = {kind: bench.run(pipeline, sets, kind) for kind in kinds}
            variants.append((variant, results))
            say(f"{variant.label}: {_headline(summarize(_pooled(results[kinds[0]])))} ({kinds[0]} questions)")
    default = next(results for variant, results in variants if variant == Variant(default_chunking))
    rows = [
        {
            "variant": variant.describe(),
            "chunks": chunk_counts[variant.chunking.label],
            "results": {kind: _summaries(results[kind]) for kind in kinds},
            "vs_default": {kind: compare(_pooled(default[kind]), _pooled(results[kind])) for kind in kinds},
        }
        for variant, results in variants
    ]
    return rows, default, seconds


def _expansion(
    bench: Bench,
    sets: Sequence[AuthorSet],
    kinds: Sequence[str],
    default_chunking: Chunking,
    expansions: int,
    limit: int,
    skip: bool,
    llm: LLMClient | None,
    say: Log,
) -> dict[str, Any]:
    if skip or expansions < 1 or limit < 1:
        return {"skipped": True, "reason": "skipped on request (--skip-expansion, or no expansions or questions)"}
    from twin_platform.adapters.llm.factory import build_llm

    llm = llm or build_llm(bench.settings)
    kind = kinds[0]
    pipeline = bench.pipeline(Variant(default_chunking), llm=llm)
    say(f"query expansion: {expansions} rephrasings by {llm.model_id}, first {limit} {kind} questions per author")
    without = bench.run(pipeline, sets, kind, limit=limit)
    began = time.perf_counter()
    expanded = bench.run(pipeline, sets, kind, expansions=expansions, limit=limit)
    asked = len(_pooled(expanded))
    rephrased = [len(r.queries) - 1 for r in _pooled(expanded)]
    return {
        "skipped": False,
        "llm": llm.model_id,
        "kind": kind,
        "questions_per_author": limit,
        "questions": asked,
        "mean_rephrasings": round(sum(rephrased) / max(1, asked), 2),
        "seconds_per_question": round((time.perf_counter() - began) / max(1, asked), 1),
        "results": {"0": _summaries(without), str(expansions): _summaries(expanded)},
        "vs_none": compare(_pooled(without), _pooled(expanded)),
    }


def _rerank(
    bench: Bench,
    sets: Sequence[AuthorSet],
    kinds: Sequence[str],
    default_chunking: Chunking,
    default: dict[str, dict[str, list[QuestionResult]]],
    say: Log,
) -> dict[str, Any]:
    model = bench.settings.reranker_model
    if not model:
        return {
            "skipped": True,
            "reason": "TWIN_RERANKER_MODEL is not set (no cross-encoder weights ship offline); the API ranks "
            "by fusion alone then, as measured in the grid",
        }
    from twin_platform.adapters.reranker import CrossEncoderReranker

    say(f"reranking with {model}")
    pipeline = bench.pipeline(Variant(default_chunking, rerank=True), reranker=CrossEncoderReranker(model))
    results = {kind: bench.run(pipeline, sets, kind) for kind in kinds}
    return {
        "skipped": False,
        "model": model,
        "results": {kind: _summaries(results[kind]) for kind in kinds},
        "vs_off": {kind: compare(_pooled(default[kind]), _pooled(results[kind])) for kind in kinds},
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
