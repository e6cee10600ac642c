"""raw_documents: an author's sources, collected into the document warehouse."""

from datetime import timedelta

import dagster as dg

from twin_platform.collection.report import ImportReport
from twin_platform.collection.sources import sync_author_sources
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.defs.metadata import table
from twin_platform.defs.resources import TwinResource

MAX_REJECTIONS_SHOWN = 50


def report_metadata(report: ImportReport, *, documents: int, backend: str) -> dict[str, dg.MetadataValue]:
    """Counts, the sources, a platform x category table and the rejections, for the Dagster UI.

    The rejections table stops at ``MAX_REJECTIONS_SHOWN`` rows; ``rejected`` counts them all."""
    sources = table(
        {"source": "string", "kind": "string", "status": "string", "documents": "int", "detail": "string"},
        (
            {
                "source": s.source,
                "kind": s.kind,
                "status": "ok" if s.ok else "FAILED",
                "documents": s.documents,
                "detail": s.detail,
            }
            for s in report.sources
        ),
    )
    by_source = table(
        {"platform": "string", "category": "string", "documents": "int"},
        (
            {"platform": p.value, "category": c.value, "documents": n}
            for (p, c), n in sorted(report.by_platform_category.items())
        ),
    )
    rejections = table(
        {"source": "string", "reason": "string"},
        ({"source": r.source, "reason": r.reason} for r in report.rejected[:MAX_REJECTIONS_SHOWN]),
    )
    return {
        "documents": dg.MetadataValue.int(documents),
        "sources": sources,
        "sources_failed": dg.MetadataValue.int(sum(1 for s in report.sources if not s.ok)),
        "not_modified": dg.MetadataValue.int(report.not_modified),
        "inserted": dg.MetadataValue.int(report.inserted),
        "updated": dg.MetadataValue.int(report.updated),
        "unchanged": dg.MetadataValue.int(report.unchanged),
        "tombstoned": dg.MetadataValue.int(report.tombstoned),
        "rejected": dg.MetadataValue.int(len(report.rejected)),
        "skipped_files": dg.MetadataValue.int(report.skipped),
        "by_platform_category": by_source,
        "rejections": rejections,
        "warehouse": dg.MetadataValue.text(backend),
    }


@dg.asset(
    partitions_def=authors_partitions,
    group_name="collection",
    kinds={"python", "postgres"},
    # Re-collect every author daily at 03:00 UTC (crawls are conditional: unchanged pages cost a 304).
    automation_condition=dg.AutomationCondition.on_cron("0 3 * * *", "UTC"),
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)),
    description="Everything the author published, from their imports and crawled links, in the "
    "document warehouse. Idempotent: unchanged documents are not rewritten (and unchanged pages are "
    "not even downloaded); documents gone from an import folder become tombstones. One failing "
    "source never loses the others; the run fails only when every source failed.",
)
def raw_documents(context: dg.AssetExecutionContext, twin: TwinResource) -> dg.MaterializeResult:
    runtime = twin.runtime
    author = runtime.authors.get(context.partition_key)
    if author is None:
        raise dg.Failure(f"author {context.partition_key!r} is not in the registry (twin authors list)")
    report = sync_author_sources(
        author,
        warehouse=runtime.warehouse,
        authors=runtime.authors,
        max_bytes=runtime.settings.import_max_file_bytes,
        crawl=runtime.crawl,
        on_source=lambda url: context.log.info("crawled %s", url),
    )
    for rejection in report.rejected:
        context.log.warning("rejected: %s", rejection.reason)
    metadata = report_metadata(report, documents=runtime.warehouse.count(author.id), backend=runtime.warehouse_backend)
    if report.all_sources_failed:
        raise dg.Failure(f"every source of {author.full_name} failed; nothing was stored", metadata=metadata)
    context.log.info(
        "%s: %d inserted, %d updated, %d unchanged (%d pages not modified), %d tombstoned, %d rejected",
        author.id,
        report.inserted,
        report.updated,
        report.unchanged,
        report.not_modified,
        report.tombstoned,
        len(report.rejected),
    )
    return dg.MaterializeResult(metadata=metadata)
