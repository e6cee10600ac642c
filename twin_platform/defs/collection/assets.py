"""raw_documents: an author's sources, collected into the document warehouse."""

import dagster as dg

from twin_platform.collection.ingest import sync_author_imports
from twin_platform.collection.report import ImportReport
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
    return {
        "documents": dg.MetadataValue.int(documents),
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
    description="Everything the author published, from their configured imports (and links), in the "
    "document warehouse. Idempotent: unchanged documents are not rewritten; documents gone from "
    "a source become tombstones.",
)
def raw_documents(context: dg.AssetExecutionContext, twin: TwinResource) -> dg.MaterializeResult:
    runtime = twin.runtime
    author = runtime.authors.get(context.partition_key)
    if author is None:
        raise dg.Failure(f"author {context.partition_key!r} is not in the registry (twin authors list)")
    report = sync_author_imports(
        author,
        warehouse=runtime.warehouse,
        authors=runtime.authors,
        max_bytes=runtime.settings.import_max_file_bytes,
    )
    for rejection in report.rejected:
        context.log.warning("rejected: %s", rejection.reason)
    if author.links:
        context.log.info(
            "links are collected by the crawlers of the collection stage: %s",
            ", ".join(url for urls in author.links.values() for url in urls),
        )
    if author.imports and report.stored == 0 and report.rejected:
        raise dg.Failure(
            f"every source of {author.full_name} failed; nothing was stored",
            metadata=report_metadata(
                report, documents=runtime.warehouse.count(author.id), backend=runtime.warehouse_backend
            ),
        )
    context.log.info(
        "%s: %d inserted, %d updated, %d unchanged, %d tombstoned, %d rejected",
        author.id,
        report.inserted,
        report.updated,
        report.unchanged,
        report.tombstoned,
        len(report.rejected),
    )
    return dg.MaterializeResult(
        metadata=report_metadata(
            report, documents=runtime.warehouse.count(author.id), backend=runtime.warehouse_backend
        )
    )
