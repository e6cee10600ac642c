"""raw_documents: an author's sources, collected into the document warehouse."""

from datetime import timedelta

import dagster as dg

from twin_platform.collection.report import ImportReport
from twin_platform.collection.sources import sync_author_sources
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.defs.resources import TwinResource

MAX_REJECTIONS_SHOWN = 50


def _markdown_table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def report_metadata(report: ImportReport, *, documents: int, backend: str) -> dict[str, dg.MetadataValue]:
    """Counts, a platform x category table and the rejections, for the Dagster UI."""
    by_source = _markdown_table(
        ("platform", "category", "documents"),
        [(p.value, c.value, n) for (p, c), n in sorted(report.by_platform_category.items())],
    )
    rejections = _markdown_table(
        ("source", "reason"), [(r.source, r.reason) for r in report.rejected[:MAX_REJECTIONS_SHOWN]]
    )
    if len(report.rejected) > MAX_REJECTIONS_SHOWN:
        rejections += f"\n\n... and {len(report.rejected) - MAX_REJECTIONS_SHOWN} more"
    sources = _markdown_table(
        ("source", "kind", "status", "documents", "detail"),
        [(s.source, s.kind, "ok" if s.ok else "FAILED", s.documents, s.detail) for s in report.sources],
    )
    return {
        "documents": dg.MetadataValue.int(documents),
        "sources": dg.MetadataValue.md(sources if report.sources else "no sources configured"),
        "sources_failed": dg.MetadataValue.int(sum(1 for s in report.sources if not s.ok)),
        "not_modified": dg.MetadataValue.int(report.not_modified),
        "inserted": dg.MetadataValue.int(report.inserted),
        "updated": dg.MetadataValue.int(report.updated),
        "unchanged": dg.MetadataValue.int(report.unchanged),
        "tombstoned": dg.MetadataValue.int(report.tombstoned),
        "rejected": dg.MetadataValue.int(len(report.rejected)),
        "skipped_files": dg.MetadataValue.int(report.skipped),
        "by_platform_category": dg.MetadataValue.md(by_source),
        "rejections": dg.MetadataValue.md(rejections if report.rejected else "none"),
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
