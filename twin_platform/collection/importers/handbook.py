"""Import the LLM Engineer's Handbook warehouse export (its MongoDB collections dumped as JSON).

Files: ``UserDocument.json`` (``_id``, ``first_name``, ``last_name``), ``ArticleDocument.json``,
``PostDocument.json`` and ``RepositoryDocument.json`` (each a list of documents carrying
``author_id``, ``platform``, ``link`` and a ``content`` mapping), as the book's reference code writes them.
Those files are read only when they are regular files inside the folder: links are refused, not followed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin_platform.collection.importers.files import FolderTree
from twin_platform.collection.importers.text import InvalidInput, decode
from twin_platform.collection.report import Rejection
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, DocumentDraft, Platform, platform_for_url

USERS_FILE = "UserDocument.json"
DOCUMENT_FILES = {
    "ArticleDocument.json": Category.ARTICLE,
    "PostDocument.json": Category.POST,
    "RepositoryDocument.json": Category.REPOSITORY,
}


def is_handbook_export(path: Path) -> bool:
    """A folder with a ``UserDocument.json`` (which, should it be a link, is then refused by name)."""
    return path.is_dir() and FolderTree(path).exists(USERS_FILE)


@dataclass(frozen=True)
class HandbookUser:
    export_id: str
    author: Author


def _load_list(tree: FolderTree, filename: str, max_bytes: int) -> list[Any]:
    try:
        raw = tree.read(filename, max_bytes)  # a link is refused, never followed
    except OSError as exc:
        raise InvalidInput(f"could not be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(decode(raw))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, list):
        raise InvalidInput(f"has an unknown shape: expected a JSON list of documents, found a {type(data).__name__}")
    return data


def read_users(folder: Path, *, max_bytes: int) -> tuple[dict[str, HandbookUser], list[Rejection]]:
    users: dict[str, HandbookUser] = {}
    rejections: list[Rejection] = []
    try:
        records = _load_list(FolderTree(folder), USERS_FILE, max_bytes)
    except InvalidInput as exc:
        return {}, [Rejection(USERS_FILE, f"{USERS_FILE} {exc}")]
    for index, record in enumerate(records):
        label = f"{USERS_FILE}[{index}]"
        if not isinstance(record, dict) or not {"_id", "first_name", "last_name"} <= record.keys():
            rejections.append(Rejection(label, f"{label} has an unknown shape: expected _id, first_name, last_name"))
            continue
        full_name = f"{record['first_name']} {record['last_name']}".strip()
        try:
            users[str(record["_id"])] = HandbookUser(str(record["_id"]), Author(full_name=full_name))
        except (ValidationError, ValueError) as exc:
            rejections.append(Rejection(label, f"{label} has an invalid author name {full_name!r}: {exc}"))
    return users, rejections


def _platform(declared: object, link: str) -> Platform:
    name = str(declared or "").strip().lower()
    if name in {p.value for p in Platform}:
        return Platform(name)
    if name.endswith(".substack.com"):
        return Platform.SUBSTACK
    if name.endswith("medium.com"):
        return Platform.MEDIUM
    return platform_for_url(link) if link.startswith(("http://", "https://")) else Platform.WEB


def _content_text(category: Category, content: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Title, body and extra metadata from a handbook ``content`` mapping."""
    if category is Category.REPOSITORY:
        files = {str(name): str(text) for name, text in content.items() if isinstance(text, str) and text.strip()}
        body = "\n\n".join(f"### {name}\n\n{text}" for name, text in sorted(files.items()))
        return "", body, {"files": sorted(files)}
    title = str(content.get("Title") or "")
    extra: dict[str, Any] = {}
    if content.get("Subtitle"):
        extra["subtitle"] = str(content["Subtitle"])
    if "Content" in content:
        body = str(content.get("Content") or "")
    else:  # posts: the book stores post text under free-form keys
        body = "\n\n".join(
            str(v) for k, v in content.items() if isinstance(v, str) and k not in {"Title", "Subtitle", "language"}
        )
    return title, body, extra


def read_documents(
    folder: Path, users: dict[str, HandbookUser], *, max_bytes: int
) -> Iterator[DocumentDraft | Rejection]:
    tree = FolderTree(folder)
    for filename, category in DOCUMENT_FILES.items():
        if not tree.exists(filename):
            continue
        try:
            records = _load_list(tree, filename, max_bytes)
        except InvalidInput as exc:
            yield Rejection(filename, f"{filename} {exc}")
            continue
        for index, record in enumerate(records):
            label = f"{filename}[{index}]"
            try:
                yield _draft(record, category, users, label)
            except InvalidInput as exc:
                yield Rejection(label, f"{label} {exc}")


def _draft(record: object, category: Category, users: dict[str, HandbookUser], label: str) -> DocumentDraft:
    if not isinstance(record, dict) or not isinstance(record.get("content"), dict) or "author_id" not in record:
        raise InvalidInput("has an unknown shape: expected a mapping with author_id and a content mapping")
    record_id = str(record.get("_id") or "")
    author_ref = str(record["author_id"])
    if author_ref not in users:
        name = record.get("author_full_name") or "unknown"
        raise InvalidInput(f"belongs to author_id {author_ref} ({name}), who is not in {USERS_FILE}")
    link = str(record.get("link") or "").strip()
    if not link:
        if not record_id:
            raise InvalidInput("has neither a link nor an _id to identify it")
        link = f"urn:llm-engineers-handbook:{category.value}:{record_id}"
    title, body, extra = _content_text(category, record["content"])
    if category is Category.REPOSITORY and not title:
        title = str(record.get("name") or link.rstrip("/").rsplit("/", 1)[-1])
    language = record["content"].get("language")
    metadata = {
        "importer": "llm-engineers-handbook",
        "handbook_id": record_id,
        "handbook_platform": str(record.get("platform") or ""),
        **extra,
    }
    try:
        return DocumentDraft(
            category=category,
            platform=_platform(record.get("platform"), link),
            source_url=link,
            title=title,
            content=body,
            language=str(language) if language else None,
            metadata=metadata,
            author_ref=author_ref,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"has an invalid {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
