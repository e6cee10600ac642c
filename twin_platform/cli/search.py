"""``twin search``: hybrid search over the index, with every rank shown."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from twin_platform.adapters.runtime import open_runtime
from twin_platform.cli.authors import AUTHOR_HELP, resolve_author
from twin_platform.cli.console import err, fail, literal, out, print_json
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.retrieval import SearchFilters
from twin_platform.rag.search import hybrid_search
from twin_platform.settings import Settings


def search_command(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    author: str | None = typer.Option(None, "--author", help=f"Only this author's chunks ({AUTHOR_HELP})."),
    k: int = typer.Option(5, "--k", min=1, max=100, help="How many chunks to show."),
    platform: list[Platform] = typer.Option([], "--platform", help="Only these platforms (repeatable)."),
    category: list[Category] = typer.Option([], "--category", help="Only these categories (repeatable)."),
    after: datetime | None = typer.Option(None, "--after", help="Published on or after (YYYY-MM-DD)."),
    before: datetime | None = typer.Option(None, "--before", help="Published before (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Top chunks for QUERY: dense (pgvector), full-text and fused (RRF) ranks, scores, titles and URLs."""
    if not query.strip():
        raise fail("the query is empty")
    with open_runtime(Settings()) as runtime:
        author_id = resolve_author(runtime.authors, author).id if author else None
        filters = SearchFilters(
            author_id=author_id,
            platforms=tuple(platform),
            categories=tuple(category),
            published_after=after,
            published_before=before,
        )
        with err.status("loading the embedding model ...", spinner="dots"):
            embedder = runtime.embedder()
        result = hybrid_search(query, runtime.search, embedder, filters, k=k)
    hits = [
        {
            "rank": hit.ranks["fused"],
            "score": round(hit.score, 5),
            "dense_rank": hit.ranks.get("dense"),
            "dense_score": round(hit.scores["dense"], 4) if "dense" in hit.scores else None,
            "text_rank": hit.ranks.get("text"),
            "text_score": round(hit.scores["text"], 4) if "text" in hit.scores else None,
            "title": hit.title,
            "url": hit.source_url,
            "author": hit.author_id,
            "platform": hit.platform.value,
            "category": hit.category.value,
            "published_at": hit.published_at.isoformat() if hit.published_at else None,
            "text": hit.text,
        }
        for hit in result.hits
    ]
    if as_json:
        print_json({"query": query, "hits": hits, "timings_ms": result.timings_ms})
        return
    if not hits:
        out.print("no matching chunks (is the index built? `twin materialize`)")
        return
    table = Table("#", "fused", "dense (rank)", "text (rank)", "title / url / snippet", show_lines=True)
    for hit in hits:
        snippet = " ".join(str(hit["text"]).split())[:240]
        table.add_row(
            str(hit["rank"]),
            f"{hit['score']:.4f}",
            f"{hit['dense_score']} ({hit['dense_rank']})" if hit["dense_rank"] else "-",
            f"{hit['text_score']} ({hit['text_rank']})" if hit["text_rank"] else "-",
            literal((str(hit["title"]), "bold"), "\n", hit["url"], "\n", snippet),
        )
    out.print(table)
    out.print(f"timings (ms): {result.timings_ms}")
