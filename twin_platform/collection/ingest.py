"""Store what importers found: resolve authors, reject duplicates, upsert in batches, count outcomes."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from twin_platform.collection.importers import exports, folder, handbook
from twin_platform.collection.report import ImportReport, Rejection, Skipped
from twin_platform.domain.authors import Author, close_matches
from twin_platform.domain.documents import DocumentDraft, RawDocument
from twin_platform.domain.ports import AuthorRegistry, DocumentWarehouse

DEFAULT_BATCH_SIZE = 200


class ImportAborted(ValueError):
    """An import that cannot start at all (nothing was stored); the message says why."""


class UnknownAuthorError(ImportAborted):
    pass


def describe(draft: DocumentDraft) -> str:
    """How a rejection names a document: its file, its export id, or its URL."""
    meta = draft.metadata
    return str(meta.get("source_path") or meta.get("handbook_id") or draft.source_url)


def ingest(
    items: Iterable[DocumentDraft | Rejection | Skipped],
    warehouse: DocumentWarehouse,
    resolve_author: Callable[[DocumentDraft], Author | None],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_item: Callable[[], None] | None = None,
    first_seen_in: dict[tuple[str, str], str] | None = None,
) -> ImportReport:
    """Upsert every draft for its author; ``resolve_author`` returning None leaves a draft out.

    ``on_item`` is called once per input read (for progress bars). A second draft with an
    (author, source URL) already seen is rejected as a duplicate; ``first_seen_in`` (what each was
    first seen in) extends that across several imports of one run.
    """
    report = ImportReport()
    first_seen_in = {} if first_seen_in is None else first_seen_in
    batch: list[RawDocument] = []

    def flush() -> None:
        for document, outcome in zip(batch, warehouse.upsert_many(batch), strict=True):
            report.count(outcome)
            report.by_platform_category[(document.platform, document.category)] += 1
            report.authors.add(document.author_id)
            report.seen_source_urls.setdefault(document.author_id, set()).add(document.source_url)
        batch.clear()

    for item in items:
        if on_item is not None:
            on_item()
        if isinstance(item, Rejection):
            report.rejected.append(item)
            continue
        if isinstance(item, Skipped):
            report.skipped += 1
            continue
        author = resolve_author(item)
        if author is None:
            continue
        key = (author.id, item.source_url)
        label = describe(item)
        if key in first_seen_in:
            report.reject(
                label,
                f"{label} has the source URL {item.source_url} of {first_seen_in[key]}, "
                "imported earlier in this run (duplicate)",
            )
            continue
        first_seen_in[key] = label
        batch.append(item.for_author(author.id))
        if len(batch) >= batch_size:
            flush()
    flush()
    return report


def resolve_registered(authors: AuthorRegistry, name: str) -> Author:
    """The registered author ``name`` (a full name, an alias or an id) refers to; every ``--author`` uses this.

    Unknown names raise :class:`UnknownAuthorError` naming the closest registered authors.
    """
    author = authors.find_by_name(name)
    if author is not None:
        return author
    registered = authors.list()
    add = f"twin authors add {name!r}"
    suggestions = close_matches(registered, name)
    if suggestions:
        meant = " or ".join(f"{a.full_name!r} (id {a.id})" for a in suggestions)
        raise UnknownAuthorError(f"author {name!r} is not registered. Did you mean {meant}? Or add it: {add}")
    if registered:
        shown = ", ".join(a.id for a in registered[:10]) + (", ..." if len(registered) > 10 else "")
        raise UnknownAuthorError(f"author {name!r} is not registered (registered: {shown}). Add it with: {add}")
    raise UnknownAuthorError(f"author {name!r} is not registered; add it first with: {add}")


def import_path(
    path: Path,
    *,
    warehouse: DocumentWarehouse,
    authors: AuthorRegistry,
    author_name: str | None = None,
    max_bytes: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_item: Callable[[], None] | None = None,
    first_seen_in: dict[tuple[str, str], str] | None = None,
) -> ImportReport:
    """Import a folder of files (for ``author_name``) or a handbook export (its own authors).

    With ``author_name`` a handbook export is limited to that author's documents.
    Raises :class:`ImportAborted` before storing anything when the import cannot start.
    """
    path = path.expanduser()
    if not path.exists():
        raise ImportAborted(f"{path} does not exist")
    # The root may be a link (a user's shortcut to their folder): resolved once, here. Nothing under it
    # may lead outside it; the importers refuse links inside.
    path = path.resolve()
    if not (path.is_dir() or path.is_file()):
        raise ImportAborted(f"{path} is neither a folder nor a file")
    target = resolve_registered(authors, author_name) if author_name else None

    if handbook.is_handbook_export(path):
        users, rejections = handbook.read_users(path, max_bytes=max_bytes)
        registered: dict[str, Author] = {}
        for export_id, user in users.items():
            existing = authors.find_by_name(user.author.full_name)
            if target is not None and (existing is None or existing.id != target.id):
                continue
            registered[export_id] = existing or authors.save(user.author)

        def handbook_author(draft: DocumentDraft) -> Author | None:
            return registered.get(draft.author_ref or "")

        items = handbook.read_documents(path, users, max_bytes=max_bytes)
        report = ingest(
            items, warehouse, handbook_author, batch_size=batch_size, on_item=on_item, first_seen_in=first_seen_in
        )
        report.rejected[:0] = rejections
        report.authors |= {author.id for author in registered.values()}
        return report

    export = exports.detect_export(path)
    if export is None and path.is_file() and zipfile.is_zipfile(path):
        raise ImportAborted(f"{path} is a zip archive but not a Medium, Substack or LinkedIn export")
    if target is None:
        kind = f"a {export.platform.value} export" if export else "a folder of files"
        raise UnknownAuthorError(f"{path} is {kind}: say whose it is with --author NAME")
    if export is not None:
        publication = next(iter(target.links.get(export.platform, ())), None)
        exported = exports.read_export(export, path, max_bytes=max_bytes, publication_url=publication)
        return ingest(
            exported, warehouse, lambda _: target, batch_size=batch_size, on_item=on_item, first_seen_in=first_seen_in
        )
    return ingest(
        folder.read_folder(path, max_bytes=max_bytes),
        warehouse,
        lambda _: target,
        batch_size=batch_size,
        on_item=on_item,
        first_seen_in=first_seen_in,
    )
