"""Collect everything configured for an author: their imports and their links, each source isolated."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from twin_platform.collection.crawlers.base import CrawlResult
from twin_platform.collection.crawlers.dispatch import CrawlEnvironment
from twin_platform.collection.importers import handbook
from twin_platform.collection.importers.exports import detect_export
from twin_platform.collection.ingest import ImportAborted, import_path, ingest
from twin_platform.collection.report import ImportReport, SourceStatus
from twin_platform.domain.authors import Author
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Platform
from twin_platform.domain.ports import AuthorRegistry, DocumentQuery, DocumentWarehouse


def store_crawl(
    result: CrawlResult, author: Author, warehouse: DocumentWarehouse, env: CrawlEnvironment
) -> ImportReport:
    """Store a crawl's documents, then remember its validators (only once the documents are safe)."""
    report = ingest(result.documents, warehouse, lambda _: author)
    report.not_modified += result.not_modified
    if env.validators is not None and result.validators:
        env.validators.save(result.validators)
    return report


def _importer_name(path: Path) -> str:
    if handbook.is_handbook_export(path):
        return "llm-engineers-handbook"
    export = detect_export(path)
    return export.importer if export is not None else "folder"


def _import_sources(
    author: Author, report: ImportReport, *, warehouse: DocumentWarehouse, authors: AuthorRegistry, max_bytes: int
) -> None:
    complete = True
    importers: set[str] = set()
    # Files without a URL are named by their path inside their import folder, so two folders can both
    # hold "index.md": the first keeps it, the second is told, instead of overwriting it on every run.
    first_seen_in: dict[tuple[str, str], str] = {}
    for source in author.imports:
        path = Path(source)
        try:
            part = import_path(
                path,
                warehouse=warehouse,
                authors=authors,
                author_name=author.id,
                max_bytes=max_bytes,
                first_seen_in=first_seen_in,
            )
        except ImportAborted as exc:
            complete = False
            report.reject(source, str(exc))
            report.sources.append(SourceStatus(source, "import", ok=False, detail=str(exc)))
            continue
        report.merge(part)
        importers.add(_importer_name(path))
        report.sources.append(
            SourceStatus(
                source,
                "import",
                ok=True,
                documents=part.stored,
                detail=f"{len(part.rejected)} rejected" if part.rejected else "",
            )
        )
    if complete and importers:
        seen = report.seen_source_urls.get(author.id, set())
        # A file that is there but was rejected this time (say, half-written) keeps its last good version.
        rejected_files = {rejection.source for rejection in report.rejected}
        stale = [
            doc.source_url
            for doc in warehouse.find(DocumentQuery(author_id=author.id))
            if doc.metadata.get("importer") in importers
            and doc.source_url not in seen
            and doc.metadata.get("source_path") not in rejected_files
        ]
        report.tombstoned += warehouse.tombstone(author.id, stale)


def _crawl_links(
    author: Author,
    report: ImportReport,
    env: CrawlEnvironment,
    warehouse: DocumentWarehouse,
    on_source: Callable[[str], None] | None,
) -> None:
    links: list[tuple[str, Platform]] = [(url, platform) for platform, urls in author.links.items() for url in urls]
    if not links:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(env.max_workers, len(links))), thread_name_prefix="crawl") as pool:
        futures = {
            pool.submit(env.crawl, url, platform, respect_robots=author.respect_robots_txt): url
            for url, platform in links
        }
        for future in as_completed(futures):
            url = futures[future]
            if on_source is not None:
                on_source(url)
            try:
                result = future.result()
            except FetchError as exc:
                report.sources.append(SourceStatus(url, "link", ok=False, detail=exc.reason))
                report.reject(url, str(exc))
                continue
            part = store_crawl(result, author, warehouse, env)
            report.merge(part)
            detail = "; ".join(result.skipped[:3]) + (" ..." if len(result.skipped) > 3 else "")
            if result.not_modified:
                detail = f"{result.not_modified} not modified" + (f"; {detail}" if detail else "")
            report.sources.append(SourceStatus(url, "link", ok=True, documents=part.stored, detail=detail))


def sync_author_sources(
    author: Author,
    *,
    warehouse: DocumentWarehouse,
    authors: AuthorRegistry,
    max_bytes: int,
    crawl: CrawlEnvironment | None = None,
    on_source: Callable[[str], None] | None = None,
) -> ImportReport:
    """Run every import and crawl every link of ``author``; one failing source never loses the others.

    Documents gone from an import folder become tombstones; a source that cannot be read tombstones
    nothing (a missing folder must not look like a folder whose files were all deleted). Crawled
    documents are never tombstoned: a page that did not answer is not a deleted page.
    """
    report = ImportReport()
    _import_sources(author, report, warehouse=warehouse, authors=authors, max_bytes=max_bytes)
    if crawl is not None:
        _crawl_links(author, report, crawl, warehouse, on_source)
    elif author.links:
        report.sources.extend(
            SourceStatus(url, "link", ok=False, detail="crawling is not configured")
            for urls in author.links.values()
            for url in urls
        )
    report.authors.add(author.id)
    return report
