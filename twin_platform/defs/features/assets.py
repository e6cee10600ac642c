"""cleaned_documents -> chunks -> chunk_embeddings, per author, refreshed when their upstream data changes."""

import dagster as dg

from twin_platform.adapters.postgres.feature_checks import chunk_health
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.defs.automation import REFRESH_FEATURES
from twin_platform.defs.resources import TwinResource
from twin_platform.features.chunking import ChunkingOptions
from twin_platform.features.cleaning import CleaningOptions
from twin_platform.features.pipeline import refresh_chunks, refresh_cleaned, refresh_embeddings


def _changed(**counts: int) -> dg.MetadataValue:
    changed = {k: v for k, v in counts.items() if v}
    return dg.MetadataValue.text(", ".join(f"{v} {k}" for k, v in changed.items()) if changed else "no changes")


@dg.asset(
    partitions_def=authors_partitions,
    deps=["raw_documents"],
    automation_condition=REFRESH_FEATURES,
    group_name="features",
    kinds={"python", "postgres"},
    description="Raw documents cleaned per category (navigation, widgets and link clutter removed from "
    "articles and posts; code kept intact in repositories), with lineage to the raw version. Only new or "
    "changed documents are cleaned; tombstoned ones are removed with their chunks.",
)
def cleaned_documents(context: dg.AssetExecutionContext, twin: TwinResource) -> dg.MaterializeResult:
    runtime = twin.runtime
    options = CleaningOptions(mask_pii=runtime.settings.clean_mask_pii)
    report = refresh_cleaned(context.partition_key, runtime.warehouse, runtime.features, options)
    context.log.info("%s: %s", context.partition_key, report)
    return dg.MaterializeResult(
        metadata={
            "changes": _changed(cleaned=report.cleaned, removed=report.removed),
            "cleaned": report.cleaned,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "empty_after_cleaning": report.empty,
        }
    )


CHUNK_CHECKS = [
    dg.AssetCheckSpec(
        "no_empty_chunks", asset="chunks", description="No chunk of the author is empty or only whitespace."
    ),
    dg.AssetCheckSpec(
        "no_orphan_chunks",
        asset="chunks",
        description="Every chunk belongs to a cleaned document of the same author that still exists (none "
        "left behind by a removed document).",
    ),
    dg.AssetCheckSpec(
        "every_document_has_chunks",
        asset="chunks",
        description="Every cleaned document of the author has at least one chunk, so all of it can be found.",
    ),
    dg.AssetCheckSpec(
        "chunks_fit_the_model",
        asset="chunks",
        description="No chunk is longer than the embedding model reads (its word pieces, special tokens "
        "excluded): a longer one would be truncated silently.",
    ),
    dg.AssetCheckSpec(
        "duplicate_chunk_rate",
        asset="chunks",
        blocking=False,
        description="Warning: the share of chunks whose text repeats another chunk of the author stays under "
        "TWIN_MAX_DUPLICATE_CHUNK_RATE.",
    ),
]


@dg.asset(
    partitions_def=authors_partitions,
    deps=[cleaned_documents],
    automation_condition=REFRESH_FEATURES,
    group_name="features",
    kinds={"python", "postgres"},
    check_specs=CHUNK_CHECKS,
    description="Cleaned documents split per category (posts whole, articles by packed sentences with "
    "overlap, repositories code-aware), sized in the embedding model's tokens so none is truncated. "
    "Ids are content hashes: unchanged chunks keep their embeddings.",
)
def chunks(context: dg.AssetExecutionContext, twin: TwinResource) -> dg.MaterializeResult:
    runtime = twin.runtime
    embedder = runtime.embedder()
    settings = runtime.settings
    options = ChunkingOptions(
        max_tokens=embedder.max_tokens,
        target_tokens=min(settings.chunk_target_tokens, embedder.max_tokens),
        overlap_tokens=min(settings.chunk_overlap_tokens, settings.chunk_target_tokens - 1),
    )
    report = refresh_chunks(context.partition_key, runtime.features, embedder.count_tokens, options)
    health = chunk_health(
        runtime.engine, context.partition_key, dimension=embedder.dimension, model_id=embedder.model_id
    )
    return dg.MaterializeResult(
        metadata={
            "changes": _changed(
                documents_rechunked=report.documents, chunks_added=report.added, chunks_removed=report.removed
            ),
            "chunks": health.chunks,
            "documents": health.documents,
            "max_tokens": health.max_tokens,
            "token_limit": options.max_tokens,
            "chunking": options.fingerprint(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_empty_chunks",
                passed=health.empty_chunks == 0,
                metadata={"empty_chunks": health.empty_chunks},
            ),
            dg.AssetCheckResult(
                check_name="no_orphan_chunks",
                passed=health.orphan_chunks == 0,
                metadata={"orphan_chunks": health.orphan_chunks},
            ),
            dg.AssetCheckResult(
                check_name="every_document_has_chunks",
                passed=health.documents_without_chunks == 0,
                metadata={"documents_without_chunks": health.documents_without_chunks},
            ),
            dg.AssetCheckResult(
                check_name="chunks_fit_the_model",
                passed=health.max_tokens <= options.max_tokens,
                metadata={"max_tokens": health.max_tokens, "limit": options.max_tokens},
            ),
            dg.AssetCheckResult(
                check_name="duplicate_chunk_rate",
                passed=health.duplicate_rate <= settings.max_duplicate_chunk_rate,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rate": round(health.duplicate_rate, 4),
                    "threshold": settings.max_duplicate_chunk_rate,
                    "duplicates": health.duplicate_chunks,
                },
            ),
        ],
    )


@dg.asset(
    partitions_def=authors_partitions,
    deps=[chunks],
    automation_condition=REFRESH_FEATURES,
    group_name="features",
    kinds={"pytorch", "postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            "embedding_dimension_matches_model",
            asset="chunk_embeddings",
            description="Every stored vector has the current embedding model's dimension.",
        ),
        dg.AssetCheckSpec(
            "every_chunk_embedded_by_current_model",
            asset="chunk_embeddings",
            description="Every chunk of the author has a vector, and every vector comes from the current model "
            "(none is left from a previous one).",
        ),
    ],
    description="Normalised sentence embeddings of every chunk in a pgvector column (HNSW, cosine) beside "
    "a tsvector (GIN) for full-text search. Only chunks without an embedding from the current model are "
    "encoded; changing the model re-embeds everything.",
)
def chunk_embeddings(context: dg.AssetExecutionContext, twin: TwinResource) -> dg.MaterializeResult:
    runtime = twin.runtime
    embedder = runtime.embedder()
    report = refresh_embeddings(
        context.partition_key,
        runtime.features,
        embedder,
        batch_size=max(1024, runtime.settings.embedding_batch_size),
        on_batch=lambda n: context.log.info("embedded %d chunks", n),
    )
    health = chunk_health(
        runtime.engine, context.partition_key, dimension=embedder.dimension, model_id=embedder.model_id
    )
    return dg.MaterializeResult(
        metadata={
            "changes": _changed(embedded=report.embedded),
            "embedded": report.embedded,
            "chunks": health.chunks,
            "model": embedder.model_id,
            "dimension": embedder.dimension,
            "dimension_changed": report.dimension_changed,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="embedding_dimension_matches_model",
                passed=health.wrong_dimension == 0,
                metadata={"wrong_dimension": health.wrong_dimension},
            ),
            dg.AssetCheckResult(
                check_name="every_chunk_embedded_by_current_model",
                passed=health.embedded == health.chunks and health.other_model == 0,
                metadata={"embedded": health.embedded, "chunks": health.chunks, "other_model": health.other_model},
            ),
        ],
    )
