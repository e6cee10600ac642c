"""``twin authors``: register the people whose twins are built."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from twin_platform.adapters.runtime import open_runtime
from twin_platform.cli.console import fail, literal, out, print_json
from twin_platform.cli.instance import add_author_partitions
from twin_platform.collection.ingest import UnknownAuthorError, resolve_registered
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Platform, platform_for_url
from twin_platform.domain.ports import AuthorRegistry
from twin_platform.settings import Settings

app = typer.Typer(help="Register and list authors (each is a Dagster partition).", no_args_is_help=True)

AUTHOR_HELP = "name, alias or id"


def resolve_author(registry: AuthorRegistry, name: str) -> Author:
    """What every ``--author`` option takes: a registered author's full name, alias or id (case and spacing
    ignored). Unknown: exit 2 with the closest registered authors."""
    try:
        return resolve_registered(registry, name)
    except UnknownAuthorError as exc:
        raise fail(str(exc)) from None


def author_json(author: Author) -> dict[str, object]:
    return {
        "id": author.id,
        "full_name": author.full_name,
        "aliases": list(author.aliases),
        "links": {platform.value: list(urls) for platform, urls in author.links.items()},
        "imports": list(author.imports),
        "respect_robots_txt": author.respect_robots_txt,
    }


@app.command()
def add(
    name: str = typer.Argument(..., help="The author's full name."),
    link: list[str] = typer.Option([], "--link", help="A page of theirs to crawl (repeatable)."),
    import_path: list[Path] = typer.Option([], "--import", help="A folder or export to import (repeatable)."),
    alias: list[str] = typer.Option([], "--alias", help="Another name they publish under (repeatable)."),
    platform: Platform | None = typer.Option(
        None, "--platform", help="Platform of the --link URLs on custom domains (e.g. a Substack on its own domain)."
    ),
    ignore_robots: bool | None = typer.Option(
        None, "--ignore-robots/--respect-robots", help="Whether crawlers obey robots.txt for this author."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register an author, or add links, imports and aliases to a registered one."""
    settings = Settings()
    for path in import_path:
        if not path.exists():
            raise fail(f"--import {path} does not exist")
    links: dict = {}
    for url in link:
        if not url.startswith(("http://", "https://")):
            raise fail(f"--link {url!r} is not an http(s) URL")
        links.setdefault(platform or platform_for_url(url), []).append(url)
    imports = tuple(str(path.resolve()) for path in import_path)
    with open_runtime(settings) as runtime:
        try:
            existing = runtime.authors.find_by_name(name)
            base = existing or Author(full_name=name)
            if ignore_robots is not None:
                base = base.model_copy(update={"respect_robots_txt": not ignore_robots})
            author = base.with_additions(
                aliases=tuple(alias), links={p: tuple(u) for p, u in links.items()}, imports=imports
            )
        except (ValidationError, ValueError) as exc:
            raise fail(f"invalid author: {exc}") from None
        runtime.authors.save(author)
    add_author_partitions(settings, [author.id])
    if as_json:
        print_json(author_json(author))
    else:
        verb = "updated" if existing else "registered"
        out.print(literal(verb, " author ", (author.full_name, "bold"), f" (id {author.id})"))


@app.command("list")
def list_authors(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered authors with their document counts."""
    with open_runtime(Settings()) as runtime:
        rows = [(author, runtime.warehouse.count(author.id)) for author in runtime.authors.list()]
    if as_json:
        print_json([{**author_json(author), "documents": count} for author, count in rows])
        return
    table = Table("id", "full name", "documents", "links", "imports")
    for author, count in rows:
        table.add_row(
            literal(author.id),
            literal(author.full_name),
            str(count),
            literal("\n".join(u for urls in author.links.values() for u in urls)),
            literal("\n".join(author.imports)),
        )
    out.print(table)
