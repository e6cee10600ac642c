"""``twin crawl``: crawl one URL now, print what was found, and store it for an author."""

from __future__ import annotations

import typer
from rich.panel import Panel

from twin_platform.adapters.runtime import open_runtime
from twin_platform.cli.authors import AUTHOR_HELP, resolve_author
from twin_platform.cli.console import err, fail, literal, out, print_json
from twin_platform.collection.sources import store_crawl
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Platform
from twin_platform.settings import Settings

PREVIEW_CHARS = 1200


def crawl_command(
    url: str = typer.Argument(..., help="A profile, publication, post, article or repository URL (or a local repo)."),
    author: str | None = typer.Option(None, "--author", help=f"Store what is found for this author ({AUTHOR_HELP})."),
    platform: Platform | None = typer.Option(None, "--platform", help="Crawler to use (default: by host)."),
    ignore_robots: bool = typer.Option(False, "--ignore-robots", help="Do not obey robots.txt."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with full content)."),
) -> None:
    """Crawl URL and print the documents found; with --author they are stored too. Exit 2 when it fails."""
    settings = Settings()
    with open_runtime(settings) as runtime:
        target = resolve_author(runtime.authors, author) if author else None
        respect = not ignore_robots and (target.respect_robots_txt if target else True)
        try:
            with err.status(literal("crawling ", url, " ..."), spinner="dots"):
                result = runtime.crawl.crawl(url, platform, respect_robots=respect)
        except FetchError as exc:
            raise fail(f"could not crawl {exc}") from None
        report = store_crawl(result, target, runtime.warehouse, runtime.crawl) if target else None
    documents = [
        {
            "title": d.title,
            "url": d.source_url,
            "published_at": d.published_at.isoformat() if d.published_at else None,
            "category": d.category.value,
            "platform": d.platform.value,
            "content": d.content,
        }
        for d in result.documents
    ]
    stored = None if report is None else {k: report.as_dict()[k] for k in ("inserted", "updated", "unchanged")}
    if as_json:
        print_json(
            {"documents": documents, "not_modified": result.not_modified, "skipped": result.skipped, "stored": stored}
        )
        return
    for doc in documents:
        content = str(doc["content"])
        preview = content if len(content) <= PREVIEW_CHARS else content[:PREVIEW_CHARS] + " ..."
        out.print(
            Panel(
                literal(preview),
                title=literal(doc["title"]),
                subtitle=literal(doc["url"], "  ", doc["published_at"] or ""),
                title_align="left",
                subtitle_align="left",
            )
        )
    out.print(f"{len(documents)} document(s) found, {result.not_modified} page(s) not modified since the last crawl")
    for reason in result.skipped:
        out.print(literal(("skipped", "yellow"), " ", reason))
    if stored is None:
        out.print("nothing stored (give --author NAME to store)")
    else:
        counts = f"{stored['inserted']} inserted, {stored['updated']} updated, {stored['unchanged']} unchanged"
        out.print(literal("stored for ", target.id if target else "", ": ", counts))
