"""raw_documents: an author's sources, collected into the document warehouse.

Its data version is the author's warehouse revision (the highest change counter among their documents), the
same number ``warehouse_changes_sensor`` reports for changes made outside Dagster: a collection that changed
nothing keeps the version, and nothing downstream runs for it.
"""

import dagster as dg

from twin_platform.collection.report import ImportReport
from twin_platform.collection.sources import sync_author_sources
from twin_platform.defs.authors.fingerprints import COLLECTED_FROM, sources_fingerprint
from twin_platform.defs.authors.partitions import authors_partitions
from twin_platform.defs.automation import AUTHOR_SOURCES, COLLECT
from twin_platform.defs.metadata import table
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.ports import DocumentQuery, DocumentWarehouse

MAX_REJECTIONS_SHOWN = 50

author_sources = dg.AssetSpec(
    AUTHOR_SOURCES,
    partitions_def=authors_partitions,
    group_name="collection",
    kinds={"folder"},
    description="Where an author's writing comes from: the links and import folders in the author registry, "
    "and the files in those folders. Reported by author_sources_sensor; its data version is a fingerprint of "
    "all of it, so a new, changed or deleted file (or link) starts one collection of that author.",
)


def warehouse_data_version(revision: int) -> dg.DataVersion:
    """The data version of an author's raw documents: their warehouse revision."""
    return dg.DataVersion(f"r{revision}")


def author_revision(warehouse: DocumentWarehouse, author_id: str) -> int:
    """The highest revision among the author's documents, tombstones included (0 when there are none)."""
    documents = warehouse.find(DocumentQuery(author_id=author_id, include_deleted=True))
    return max((document.revision for document in documents), default=0)


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
    deps=[author_sources],
    group_name="collection",
    kinds={"python", "postgres"},
    # A new author, a change of the author's sources, and daily at 03:00 UTC; freshness is checked per author
    # in defs/freshness.py (an asset-wide policy would let one stale author hide behind fresh ones).
    automation_condition=COLLECT,
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
    collected_from = sources_fingerprint(author)  # before reading anything: a later change is a new change
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
    revision = author_revision(runtime.warehouse, author.id)
    metadata["revision"] = dg.MetadataValue.int(revision)
    metadata[COLLECTED_FROM] = dg.MetadataValue.text(collected_from)
    return dg.MaterializeResult(metadata=metadata, data_version=warehouse_data_version(revision))
