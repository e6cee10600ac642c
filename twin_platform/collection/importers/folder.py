"""Import a folder of Markdown, HTML and plain-text files.

Markdown front matter is respected: ``title``, ``date`` (or ``published_at``), ``tags``,
``canonical_url`` (or ``url``), ``category``, ``platform``, ``language``. Without a ``category`` the
parent folder decides (``articles/``, ``posts/``, ``repositories/``), and ``article`` otherwise.

A file with no URL gets ``file:`` and its path inside the import folder as source URL
(``file:articles/vector-search.md``, percent-encoded; a single imported file is just its name): the
URL names the document without revealing where the server keeps it, and it stays the same when the
folder moves, so re-imports update the same documents. Documents stored by earlier versions under
their absolute ``file:///...`` path are moved to the new URL on their next import (see
:attr:`DocumentFields.previous_source_urls`), never duplicated.

Nothing outside the import folder is read: links inside it are refused, not followed (see
:mod:`.files`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import ValidationError

from twin_platform.collection.importers.files import FolderTree, Refused, read_regular_file
from twin_platform.collection.importers.text import InvalidInput, decode, parse_date, parse_html, shown
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
MAX_FRONT_MATTER_DEPTH = 50
_NO_ALIASES = "anchors and aliases are not allowed in front matter"


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML's safe loader, minus what a front matter never needs and an attacker can abuse.

    Anchors and aliases are refused while the document is composed, before anything is built: an
    alias is a reference, and a few nested ones ("billion laughs") expand to gigabytes once the
    values are turned into strings. Nesting is bounded, so deep brackets cannot exhaust the stack.
    Timestamps that cannot exist (``2024-13-45``) are refused with their text and line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 2  # the front matter starts on the file's second line
        if isinstance(event, yaml.AliasEvent):
            raise InvalidInput(f"has a YAML alias (*{event.anchor}) in its front matter (line {line}): {_NO_ALIASES}")
        if getattr(event, "anchor", None):
            raise InvalidInput(f"has a YAML anchor (&{event.anchor}) in its front matter (line {line}): {_NO_ALIASES}")
        if self.depth >= MAX_FRONT_MATTER_DEPTH:
            raise InvalidInput(f"has front matter nested more than {MAX_FRONT_MATTER_DEPTH} levels deep (line {line})")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> date:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(
                f"has an impossible date {node.value!r} in its front matter (line {node.start_mark.line + 2}): {exc}"
            ) from None


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _FrontMatterLoader.construct_yaml_timestamp)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter of a Markdown text as a mapping, and the text after it."""
    if not text.startswith("---"):
        return {}, text
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise InvalidInput("has a front matter block that is never closed with '---' (truncated file?)")
    loader = _FrontMatterLoader(match.group(1))
    try:
        data = loader.get_single_data() or {}
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"has malformed YAML front matter: {problem}") from None
    except InvalidInput:
        raise
    except (ValueError, OverflowError) as exc:  # a value YAML's own constructors cannot build (``!!float nope``)
        raise InvalidInput(f"has front matter that cannot be read: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InvalidInput("has front matter that is not a mapping of keys to values")
    return data, text[match.end() :]


def _category(front: dict[str, Any], name: str) -> Category:
    declared = front.get("category")
    if declared is not None:
        try:
            return Category(str(declared).strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in Category)
            raise InvalidInput(f"has an unknown category {shown(declared)} (allowed: {allowed})") from None
    for part in reversed(PurePosixPath(name).parts[:-1]):
        if part.lower() in _FOLDER_CATEGORIES:
            return _FOLDER_CATEGORIES[part.lower()]
    return Category.ARTICLE


def local_url(name: str) -> str:
    """The source URL of a file without one: ``file:`` and its POSIX path inside the import folder."""
    return f"file:{quote(name)}"


def _source_url(declared: object, name: str) -> str:
    if declared is None or declared == "":
        return local_url(name)
    url = str(declared).strip()
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"has a canonical URL {shown(url)} that is not an http(s) URL")
    return url


def _platform(declared: object, source_url: str) -> Platform:
    if declared is None:
        return platform_for_url(source_url)
    try:
        return Platform(str(declared).strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Platform)
        raise InvalidInput(f"has an unknown platform {shown(declared)} (allowed: {allowed})") from None


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    raise InvalidInput(f"has tags {shown(value)} that are neither a list nor a comma-separated string")


def parse_file(data: bytes, name: str, legacy_url: str) -> DocumentDraft:
    """One file's bytes as a draft document; raises :class:`InvalidInput` with the rejection reason.

    ``name`` is the file's POSIX path inside the import folder; ``legacy_url`` the absolute
    ``file://`` URL that versions before relative URLs stored it under.
    """
    suffix = PurePosixPath(name).suffix.lower()
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
    stem = PurePosixPath(name).stem
    title = title or stem.replace("-", " ").replace("_", " ").strip().capitalize()
    source_url = _source_url(front.get("canonical_url") or front.get("url") or front.get("canonical"), name)
    published = parse_date(front.get("date") or front.get("published_at") or front.get("published"), field="date")
    metadata: dict[str, Any] = {"importer": "folder", "source_path": name, "format": suffix.lstrip(".")}
    tags = _tags(front.get("tags"))
    if tags:
        metadata["tags"] = tags
    if front.get("subtitle"):
        metadata["subtitle"] = str(front["subtitle"])
    try:
        return DocumentDraft(
            category=_category(front, name),
            platform=_platform(front.get("platform"), source_url),
            source_url=source_url,
            previous_source_urls=(legacy_url,) if source_url.startswith("file:") else (),
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
    """Every supported file under ``root`` (a folder, or one file) as a draft, or a rejection that says why not.

    Files of other types (images, PDFs...) are skipped, not rejected: folders of writing hold them too.
    Hidden files and folders are left out. Links are rejected, never followed.
    """
    root = root.resolve()
    if not root.is_dir():
        label = str(root)
        try:
            if root.suffix.lower() not in SUPPORTED_SUFFIXES:
                suffix, expected = root.suffix or "(none)", ", ".join(sorted(SUPPORTED_SUFFIXES))
                raise InvalidInput(f"has an unsupported file type {suffix!r} (expected one of {expected})")
            yield parse_file(read_regular_file(root, max_bytes), root.name, root.as_uri())
        except InvalidInput as exc:
            yield Rejection(source=label, reason=f"{label} {exc}")
        except OSError as exc:
            yield Rejection(source=label, reason=f"{label} could not be read: {exc.strerror or exc}")
        return
    tree = FolderTree(root)
    for entry in tree.walk(skip_hidden=True):
        label = entry.name or str(root)
        if isinstance(entry, Refused):
            yield Rejection(source=label, reason=f"{label} {entry.reason}")
            continue
        if PurePosixPath(entry.name).suffix.lower() not in SUPPORTED_SUFFIXES:
            yield Skipped(source=label)
            continue
        try:
            yield parse_file(tree.read(entry.name, max_bytes), entry.name, (root / entry.name).as_uri())
        except InvalidInput as exc:
            yield Rejection(source=label, reason=f"{label} {exc}")
        except OSError as exc:
            yield Rejection(source=label, reason=f"{label} could not be read: {exc.strerror or exc}")
