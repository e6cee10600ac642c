"""The feature pipeline on the real Postgres + pgvector, with the real embedding model."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.collection.assets import raw_documents
from twin_platform.defs.features.assets import chunk_embeddings, chunks, cleaned_documents
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.retrieval import SearchFilters
from twin_platform.features.chunking import ChunkingOptions
from twin_platform.features.cleaning import CleaningOptions
from twin_platform.features.pipeline import refresh_chunks, refresh_cleaned, refresh_embeddings
from twin_platform.rag.search import hybrid_search
from twin_platform.settings import Settings
from twin_platform_tests.factories import raw_document

TOPICS = {
    1: "HNSW graphs make approximate nearest neighbour search in pgvector fast. Recall depends on ef_search.",
    2: "Dagster sensors keep a cursor so they never process the same warehouse change twice.",
    3: "Fine-tuning a small language model with LoRA adapters needs a clean instruction dataset.",
}


def store_author_docs(runtime: Runtime) -> None:
    runtime.authors.save(Author(full_name="Jane Doe"))
    runtime.warehouse.upsert_many(
        [
            raw_document(n=n, content=("\n\n".join([TOPICS[n]] * 3) + f"\n\nClosing thought {n}."), title=f"Topic {n}")
            for n in TOPICS
        ]
        + [
            raw_document(
                n=4,
                category=Category.POST,
                platform=Platform.LINKEDIN,
                source_url="https://www.linkedin.com/posts/jane_4",
                content="Write the rollback first.",
            )
        ]
    )


def refresh_all(runtime: Runtime, embedder) -> tuple:
    options = ChunkingOptions(max_tokens=embedder.max_tokens, target_tokens=60, overlap_tokens=10)
    return (
        refresh_cleaned("jane-doe", runtime.warehouse, runtime.features, CleaningOptions()),
        refresh_chunks("jane-doe", runtime.features, embedder.count_tokens, options),
        refresh_embeddings("jane-doe", runtime.features, embedder),
    )


def count(runtime: Runtime, sql: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_pipeline_is_incremental_end_to_end(runtime: Runtime, embedder):
    store_author_docs(runtime)
    cleaned, chunked, embedded = refresh_all(runtime, embedder)
    total = count(runtime, "SELECT count(*) FROM chunks")
    assert (cleaned.cleaned, chunked.documents, embedded.embedded) == (4, 4, total)
    assert count(runtime, "SELECT count(*) FROM chunks WHERE vector_dims(embedding) = 384") == total

    cleaned, chunked, embedded = refresh_all(runtime, embedder)
    assert (cleaned.cleaned, cleaned.unchanged, chunked.documents, embedded.embedded) == (0, 4, 0, 0)

    # Editing one document re-embeds only the chunks whose text changed.
    doc_one_chunks = count(
        runtime,
        "SELECT count(*) FROM chunks c JOIN cleaned_documents d ON d.id = c.document_id WHERE d.title = 'Topic 1'",
    )
    runtime.warehouse.upsert_many(
        [
            raw_document(
                n=1,
                title="Topic 1",
                content=("\n\n".join([TOPICS[1]] * 3) + "\n\nA brand new closing thought about iterative index scans."),
            )
        ]
    )
    cleaned, chunked, embedded = refresh_all(runtime, embedder)
    assert (cleaned.cleaned, chunked.documents) == (1, 1)
    assert 0 < embedded.embedded <= doc_one_chunks
    assert chunked.added == embedded.embedded

    # A tombstone takes the document's cleaned text and chunks with it.
    runtime.warehouse.tombstone("jane-doe", ["https://jane.example.com/articles/2"])
    cleaned, _, _ = refresh_all(runtime, embedder)
    assert cleaned.removed == 1
    assert count(runtime, "SELECT count(*) FROM chunks WHERE source_url LIKE '%/articles/2'") == 0
    assert (
        count(
            runtime,
            "SELECT count(*) FROM chunks c LEFT JOIN cleaned_documents d ON d.id = c.document_id WHERE d.id IS NULL",
        )
        == 0
    )


class TinyEmbedder:
    """Another 'model' (8 dimensions) to show that a model change re-embeds everything."""

    model_id = "test/tiny-8d"
    dimension = 8
    max_tokens = 254

    def __init__(self, real) -> None:
        self.real = real

    def count_tokens(self, texts):
        return self.real.count_tokens(texts)

    def encode(self, texts):
        vectors = np.array([[len(t) % 7 + 1, 1, 2, 3, 4, 5, 6, 7] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_changing_the_model_re_embeds_everything_and_rows_say_which_model(runtime: Runtime, embedder):
    store_author_docs(runtime)
    refresh_all(runtime, embedder)
    total = count(runtime, "SELECT count(*) FROM chunks")
    report = refresh_embeddings("jane-doe", runtime.features, TinyEmbedder(embedder))
    assert (report.embedded, report.dimension_changed) == (total, True)
    assert (
        count(
            runtime, "SELECT count(*) FROM chunks WHERE embedding_model = 'test/tiny-8d' AND vector_dims(embedding) = 8"
        )
        == total
    )
    back = refresh_embeddings("jane-doe", runtime.features, embedder)
    assert (back.embedded, back.dimension_changed) == (total, True)
    assert count(runtime, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_chunks_embedding_hnsw'") == 1


def test_hybrid_search_finds_the_right_chunk_and_honours_filters(runtime: Runtime, embedder):
    store_author_docs(runtime)
    runtime.authors.save(Author(full_name="John Roe"))
    runtime.warehouse.upsert_many([raw_document(author_id="john-roe", n=9, content=TOPICS[2])])
    refresh_all(runtime, embedder)
    for author in ("john-roe",):
        refresh_cleaned(author, runtime.warehouse, runtime.features, CleaningOptions())
        refresh_chunks(author, runtime.features, embedder.count_tokens, ChunkingOptions(max_tokens=embedder.max_tokens))
        refresh_embeddings(author, runtime.features, embedder)

    result = hybrid_search(
        "how do sensors avoid processing a change twice?",
        runtime.search,
        embedder,
        SearchFilters(author_id="jane-doe"),
        k=3,
    )
    top = result.hits[0]
    assert top.title == "Topic 2"
    assert top.ranks["fused"] == 1
    assert {"dense", "text"} <= set(top.ranks)
    assert all(hit.author_id == "jane-doe" for hit in result.hits)

    posts = hybrid_search("rollback", runtime.search, embedder, SearchFilters(categories=(Category.POST,)), k=5)
    assert [h.category for h in posts.hits] == [Category.POST]
    linkedin = hybrid_search("rollback", runtime.search, embedder, SearchFilters(platforms=(Platform.MEDIUM,)), k=5)
    assert linkedin.hits == []

    hostile = "'; DROP TABLE chunks; -- \\ & | ! ( :* <->"
    assert isinstance(hybrid_search(hostile, runtime.search, embedder, SearchFilters(), k=3).hits, list)
    assert count(runtime, "SELECT count(*) FROM chunks") > 0
    with pytest.raises(ValueError, match="empty"):
        hybrid_search("   ", runtime.search, embedder, SearchFilters())


def materialize_features(instance: dg.DagsterInstance, author: str) -> dict[str, dict[str, object]]:
    if author not in instance.get_dynamic_partitions(AUTHORS_PARTITION):
        instance.add_dynamic_partitions(AUTHORS_PARTITION, [author])
    result = dg.materialize(
        [raw_documents, cleaned_documents, chunks, chunk_embeddings],
        resources={"twin": TwinResource()},
        partition_key=author,
        instance=instance,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert len(checks) == 7
    assert all(checks.values()), checks
    return {
        node: {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}
        for node in ("cleaned_documents", "chunks", "chunk_embeddings")
    }


def test_assets_materialize_with_checks_and_say_when_nothing_changed(runtime: Runtime, tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Evals first\n\nBuild the evaluation set before you touch the prompt.\n")
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    instance = dg.DagsterInstance.ephemeral()
    first = materialize_features(instance, "jane-doe")
    assert first["chunk_embeddings"]["embedded"] == first["chunks"]["chunks"] == 1
    second = materialize_features(instance, "jane-doe")
    assert {m["changes"] for m in second.values()} == {"no changes"}


def forward_batch_sizes(embedder, texts: list[str]) -> tuple[list[int], np.ndarray]:
    """How many texts each forward pass of the real model received while encoding ``texts``."""
    sizes: list[int] = []
    hook = embedder.model.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0]["input_ids"])))
    try:
        vectors = embedder.encode(texts)
    finally:
        hook.remove()
    return sizes, vectors


def test_the_embedding_batch_size_setting_reaches_the_model(
    database_url: str, embedder, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TWIN_DATABASE_URL", database_url)
    monkeypatch.setenv("TWIN_EMBEDDING_BATCH_SIZE", "3")
    texts = [TOPICS[1 + i % 3] + f" ({i})" for i in range(7)]
    with open_runtime(Settings()) as runtime:
        configured = runtime.embedder()
    sizes, vectors = forward_batch_sizes(configured, texts)
    assert sizes == [3, 3, 1]
    default_sizes, default_vectors = forward_batch_sizes(embedder, texts)
    assert default_sizes == [7]  # the session's default embedder (64 per batch) is not the configured one
    assert configured.model is embedder.model  # loaded once, whatever the batch sizes
    assert np.allclose(vectors, default_vectors, atol=1e-5)
