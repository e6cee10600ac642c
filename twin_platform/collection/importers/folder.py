"""Import a folder of Markdown, HTML and plain-text files.

Markdown front matter is respected: ``title``, ``date`` (or ``published_at``), ``tags``,
``canonical_url`` (or ``url``), ``category``, ``platform``, ``language``. A file with no URL gets
its own ``file://`` path as source URL. Without a ``category`` the parent folder decides
(``articles/``, ``posts/``, ``repositories/``), and ``article`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from twin_platform.collection.importers.text import InvalidInput, decode, parse_date, parse_html
from twin_platform.collection.report import Rejection, Skipped
from twin_platform.domain.documents import Category, DocumentDraft, Platform, platform_for_url

MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
TEXT_SUFFIXES = {".txt"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES

_FOLDER_CATEGORIES = {
    "article": Category.ARTICLE,
    "articles": Category.ARTICLE,
    "post": Category.POST,
    "posts": Category.POST,
    "repository": Category.REPOSITORY,
    "repositories": Category.REPOSITORY,
    "repos": Category.REPOSITORY,
}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def iter_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` in a stable order, hidden files and folders skipped."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        yield path


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        return {}, text
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise InvalidInput("has a front matter block that is never closed with '---' (truncated file?)")
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"has malformed YAML front matter: {problem}") from None
    if not isinstance(data, dict):
        raise InvalidInput("has front matter that is not a mapping of keys to values")
    return data, text[match.end() :]


def _category(front: dict[str, Any], path: Path, root: Path) -> Category:
    declared = front.get("category")
    if declared is not None:
        try:
            return Category(str(declared).strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in Category)
            raise InvalidInput(f"has an unknown category {declared!r} (allowed: {allowed})") from None
    relative_parents = path.relative_to(root).parts[:-1] if path != root else ()
    for part in reversed(relative_parents):
        if part.lower() in _FOLDER_CATEGORIES:
            return _FOLDER_CATEGORIES[part.lower()]
    return Category.ARTICLE


def _source_url(declared: object, path: Path) -> str:
    if declared is None or declared == "":
        return path.resolve().as_uri()
    url = str(declared).strip()
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"has a canonical URL {url!r} that is not an http(s) URL")
    return url


def _platform(declared: object, source_url: str) -> Platform:
    if declared is None:
        return platform_for_url(source_url)
    try:
        return Platform(str(declared).strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Platform)
        raise InvalidInput(f"has an unknown platform {declared!r} (allowed: {allowed})") from None


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    raise InvalidInput(f"has tags {value!r} that are neither a list nor a comma-separated string")


def read_file(path: Path, root: Path, *, max_bytes: int) -> DocumentDraft:
    """One file as a draft document; raises :class:`InvalidInput` with the rejection reason."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInput(
            f"has an unsupported file type {suffix or '(none)'!r} (expected one of "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidInput(f"is {size:,} bytes, over the {max_bytes:,}-byte import limit (TWIN_IMPORT_MAX_FILE_BYTES)")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InvalidInput("contains NUL bytes (a binary file?)")
    text = decode(data, html=suffix in HTML_SUFFIXES)
    front: dict[str, Any] = {}
    title = ""
    language = None
    author = None
    if suffix in HTML_SUFFIXES:
        page = parse_html(text)
        body, title, language, author = page.text, page.title, page.language, page.author
        front = {"canonical_url": page.canonical_url, "date": page.published}
    elif suffix in MARKDOWN_SUFFIXES:
        front, body = split_front_matter(text)
        heading = _HEADING.search(body)
        title = str(front.get("title") or (heading.group(1) if heading else ""))
    else:
        body = text
    body = body.strip()
    if not body:
        raise InvalidInput("is empty (no text after front matter)" if front else "is empty")
    title = title or path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
    source_url = _source_url(front.get("canonical_url") or front.get("url") or front.get("canonical"), path)
    published = parse_date(front.get("date") or front.get("published_at") or front.get("published"), field="date")
    metadata: dict[str, Any] = {
        "importer": "folder",
        "source_path": path.relative_to(root).as_posix() if path != root else path.name,
        "format": suffix.lstrip("."),
    }
    tags = _tags(front.get("tags"))
    if tags:
        metadata["tags"] = tags
    if front.get("subtitle"):
        metadata["subtitle"] = str(front["subtitle"])
    try:
        return DocumentDraft(
            category=_category(front, path, root),
            platform=_platform(front.get("platform"), source_url),
            source_url=source_url,
            title=title,
            content=body,
            published_at=published,
            language=str(front.get("language") or front.get("lang") or language or "") or None,
            metadata=metadata,
            author_ref=str(front.get("author") or author or "") or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"has an invalid {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def read_folder(root: Path, *, max_bytes: int) -> Iterator[DocumentDraft | Rejection | Skipped]:
    """Every supported file under ``root`` as a draft, or a rejection that says why not.

    Files of other types (images, PDFs...) are skipped, not rejected: folders of writing hold them too.
    """
    for path in iter_files(root):
        label = str(path.relative_to(root)) if path != root else str(path)
        if path.suffix.lower() not in SUPPORTED_SUFFIXES and path != root:
            yield Skipped(source=label)
            continue
        try:
            yield read_file(path, root, max_bytes=max_bytes)
        except InvalidInput as exc:
            yield Rejection(source=label, reason=f"{label} {exc}")
        except OSError as exc:
            yield Rejection(source=label, reason=f"{label} could not be read: {exc.strerror or exc}")
