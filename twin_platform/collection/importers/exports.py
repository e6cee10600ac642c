"""The platforms' own data exports: Medium (posts as HTML), Substack (posts.csv + posts/*.html) and
LinkedIn (Shares.csv for posts, Articles/*.html). Each is read from the downloaded .zip or from the
folder it was unpacked into. Archives are read in memory, member by member, with size caps: nothing
is extracted to disk. Nothing outside the export is read: see :class:`Archive`.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from bs4 import BeautifulSoup
from pydantic import ValidationError

from twin_platform.collection.importers.files import FolderTree, Refused, over_limit
from twin_platform.collection.importers.text import InvalidInput, decode, parse_date, parse_html, shown
from twin_platform.collection.report import Rejection, Skipped
from twin_platform.domain.documents import Category, DocumentDraft, Platform

Item = DocumentDraft | Rejection | Skipped
MAX_MEMBERS = 100_000


class Archive:
    """A zip file or an unpacked folder, seen as relative POSIX names -> bytes.

    Nothing outside the export is ever read: zip members that are symbolic links, or whose names are
    absolute or climb with ``..``, and links inside a folder are kept out of :meth:`names` and listed
    in :attr:`refused` with the reason, for the import report.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.refused: list[Rejection] = []
        self._sizes: dict[str, int] = {}
        self._tree = FolderTree(self.path)  # how the folder form is read (unused for a zip)
        self._zip = zipfile.ZipFile(self.path) if self.path.is_file() else None
        if self._zip is not None:
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
            if len(infos) > MAX_MEMBERS:
                raise InvalidInput(f"has {len(infos):,} files, more than an export should ({MAX_MEMBERS:,})")
            for info in infos:
                problem = _unsafe_member(info)
                if problem:
                    self.refused.append(Rejection(info.filename, f"{info.filename} {problem}"))
                else:
                    self._sizes[info.filename] = info.file_size
        else:
            for entry in self._tree.walk(skip_hidden=False):
                if isinstance(entry, Refused):
                    self.refused.append(Rejection(entry.name, f"{entry.name or self.path} {entry.reason}"))
                else:
                    self._sizes[entry.name] = entry.size

    def names(self) -> list[str]:
        return sorted(self._sizes)

    def read(self, name: str, max_bytes: int) -> bytes:
        size = self._sizes[name]
        if size > max_bytes:
            raise over_limit(size, max_bytes)
        if self._zip is not None:
            with self._zip.open(name) as member:
                data = member.read(max_bytes + 1)  # never trust the declared size of a zip member
            if len(data) > max_bytes:
                raise InvalidInput(f"unpacks to more than the {max_bytes:,}-byte import limit")
            return data
        return self._tree.read(name, max_bytes)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be read, or None."""
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link in the archive: links are not followed"
    name = info.filename
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in re.split(r"[/\\]", name):
        return "has an unsafe path (absolute, or climbing out with '..'): archive members must stay inside the export"
    return None


def _find(names: list[str], pattern: str) -> list[str]:
    regex = re.compile(pattern, re.IGNORECASE)
    return [n for n in names if regex.search(n)]


def _draft(label: str, **fields: Any) -> DocumentDraft | Rejection:
    try:
        return DocumentDraft(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        return Rejection(label, f"{label} has an invalid {'.'.join(map(str, first['loc']))}: {first['msg']}")


# -- Medium -----------------------------------------------------------------------------------------


def read_medium(archive: Archive, max_bytes: int, publication_url: str | None) -> Iterator[Item]:
    for name in _find(archive.names(), r"(^|/)posts/[^/]+\.html?$"):
        label = name
        if PurePosixPath(name).name.startswith("draft_"):
            yield Skipped(label)
            continue
        try:
            soup = BeautifulSoup(decode(archive.read(name, max_bytes), html=True), "lxml")
        except InvalidInput as exc:
            yield Rejection(label, f"{label} {exc}")
            continue
        body = soup.select_one('section[data-field="body"]') or soup.select_one(".e-content")
        if body is None:
            yield Rejection(label, f"{label} is not a Medium export post (no body section)")
            continue
        title = soup.select_one(".p-name")
        subtitle = soup.select_one('section[data-field="subtitle"]')
        canonical = soup.select_one("a.p-canonical")
        published = soup.select_one("time.dt-published")
        url = str(canonical["href"]) if canonical is not None and canonical.get("href") else None
        metadata: dict[str, Any] = {"importer": "medium-export", "source_path": name}
        if subtitle is not None and subtitle.get_text(strip=True):
            metadata["subtitle"] = subtitle.get_text(" ", strip=True)
        try:
            when = parse_date(published.get("datetime") if published is not None else None, field="date")
        except InvalidInput as exc:
            yield Rejection(label, f"{label} {exc}")
            continue
        yield _draft(
            label,
            category=Category.ARTICLE,
            platform=Platform.MEDIUM,
            source_url=url or f"urn:medium-export:{PurePosixPath(name).stem}",
            title=title.get_text(" ", strip=True) if title is not None else "",
            content=parse_html(str(body)).text,
            published_at=when,
            metadata=metadata,
        )


# -- Substack ---------------------------------------------------------------------------------------


def read_substack(archive: Archive, max_bytes: int, publication_url: str | None) -> Iterator[Item]:
    names = archive.names()
    csv_names = _find(names, r"(^|/)posts\.csv$")
    if not csv_names:
        return
    csv_name = csv_names[0]
    prefix = csv_name[: -len("posts.csv")]
    try:
        rows = list(csv.DictReader(io.StringIO(decode(archive.read(csv_name, max_bytes)))))
    except (InvalidInput, csv.Error) as exc:
        yield Rejection(csv_name, f"{csv_name} {exc}")
        return
    if rows and "post_id" not in rows[0]:
        yield Rejection(csv_name, f"{csv_name} has an unknown shape: no post_id column")
        return
    html_names = set(names)
    for index, row in enumerate(rows, start=2):
        post_id = (row.get("post_id") or "").strip()
        label = f"{csv_name}:{index}"
        if not post_id:
            yield Rejection(label, f"{label} has no post_id")
            continue
        if (row.get("is_published") or "").strip().lower() not in {"true", "t", "1", "yes"}:
            yield Skipped(label)  # drafts and unpublished posts
            continue
        body_name = f"{prefix}posts/{post_id}.html"
        if body_name not in html_names:
            yield Rejection(label, f"{label}: post {post_id} has no {body_name} in the export")
            continue
        try:
            html = decode(archive.read(body_name, max_bytes), html=True)
            when = parse_date(row.get("post_date"), field="post_date")
        except InvalidInput as exc:
            yield Rejection(label, f"{label} {exc}")
            continue
        slug = post_id.split(".", 1)[1] if "." in post_id else post_id
        url = f"{publication_url.rstrip('/')}/p/{slug}" if publication_url else f"urn:substack-export:{post_id}"
        metadata: dict[str, Any] = {
            "importer": "substack-export",
            "source_path": body_name,
            "audience": row.get("audience") or None,
            "type": row.get("type") or None,
        }
        if row.get("subtitle"):
            metadata["subtitle"] = row["subtitle"]
        yield _draft(
            label,
            category=Category.ARTICLE,
            platform=Platform.SUBSTACK,
            source_url=url,
            title=row.get("title") or "",
            content=parse_html(html).text,
            published_at=when,
            metadata={k: v for k, v in metadata.items() if v is not None},
        )


# -- LinkedIn ---------------------------------------------------------------------------------------

_LINKEDIN_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)")


def _linkedin_date(value: str | None) -> datetime | None:
    """The first ``YYYY-MM-DD HH:MM[:SS]`` in ``value`` (LinkedIn writes UTC), None when there is none."""
    match = _LINKEDIN_DATE.search(value or "")
    if not match:
        return None
    clock = match.group(2) if match.group(2).count(":") == 2 else f"{match.group(2)}:00"
    try:
        return datetime.fromisoformat(f"{match.group(1)}T{clock}").replace(tzinfo=UTC)
    except ValueError as exc:  # the pattern matches days that cannot exist: 2025-13-45
        raise InvalidInput(f"has a date {shown(value)} that cannot exist: {exc}") from None


def read_linkedin(archive: Archive, max_bytes: int, publication_url: str | None) -> Iterator[Item]:
    names = archive.names()
    for csv_name in _find(names, r"(^|/)shares\.csv$"):
        try:
            rows = list(csv.DictReader(io.StringIO(decode(archive.read(csv_name, max_bytes)))))
        except (InvalidInput, csv.Error) as exc:
            yield Rejection(csv_name, f"{csv_name} {exc}")
            continue
        if rows and not {"ShareLink", "ShareCommentary"} <= set(rows[0]):
            yield Rejection(csv_name, f"{csv_name} has an unknown shape: expected ShareLink and ShareCommentary")
            continue
        for index, row in enumerate(rows, start=2):
            label = f"{csv_name}:{index}"
            text = (row.get("ShareCommentary") or "").replace('""', '"').strip().strip('"').strip()
            link = (row.get("ShareLink") or "").strip()
            if not text:
                yield Skipped(label)  # a reshare without words of the author's own
                continue
            if not link.startswith("https://"):
                yield Rejection(label, f"{label} has no ShareLink")
                continue
            try:
                when = _linkedin_date(row.get("Date"))
            except InvalidInput as exc:
                yield Rejection(label, f"{label} {exc}")
                continue
            metadata = {
                "importer": "linkedin-export",
                "source_path": csv_name,
                "shared_url": row.get("SharedUrl") or None,
                "visibility": row.get("Visibility") or None,
            }
            yield _draft(
                label,
                category=Category.POST,
                platform=Platform.LINKEDIN,
                source_url=link,
                title=text.split("\n", 1)[0][:120],
                content=text,
                published_at=when,
                metadata={k: v for k, v in metadata.items() if v is not None},
            )
    for name in _find(names, r"(^|/)articles/(articles/)?[^/]+\.html?$"):
        try:
            html = decode(archive.read(name, max_bytes), html=True)
        except InvalidInput as exc:
            yield Rejection(name, f"{name} {exc}")
            continue
        soup = BeautifulSoup(html, "lxml")
        heading = soup.find("h1")
        title = heading.get_text(" ", strip=True) if heading is not None else PurePosixPath(name).stem
        stamp = soup.select_one("p.published") or soup.select_one("p.created")
        try:
            when = _linkedin_date(stamp.get_text(" ", strip=True) if stamp is not None else None)
        except InvalidInput as exc:
            yield Rejection(name, f"{name} {exc}")
            continue
        pulse = soup.find("a", href=re.compile(r"^https://www\.linkedin\.com/pulse/"))
        for tag in soup.select("h1, p.published, p.created"):
            tag.decompose()
        yield _draft(
            name,
            category=Category.ARTICLE,
            platform=Platform.LINKEDIN,
            source_url=str(pulse["href"]) if pulse is not None else f"urn:linkedin-article:{PurePosixPath(name).stem}",
            title=title,
            content=parse_html(str(soup)).text,
            published_at=when,
            metadata={"importer": "linkedin-export", "source_path": name},
        )


@dataclass(frozen=True)
class ExportKind:
    importer: str
    platform: Platform
    read: Callable[[Archive, int, str | None], Iterator[Item]]


MEDIUM = ExportKind("medium-export", Platform.MEDIUM, read_medium)
SUBSTACK = ExportKind("substack-export", Platform.SUBSTACK, read_substack)
LINKEDIN = ExportKind("linkedin-export", Platform.LINKEDIN, read_linkedin)


def _kind_of(archive: Archive) -> ExportKind | None:
    names = archive.names()
    if _find(names, r"(^|/)shares\.csv$") or _find(names, r"(^|/)articles/articles/[^/]+\.html?$"):
        return LINKEDIN
    if _find(names, r"(^|/)posts\.csv$"):
        return SUBSTACK
    posts = _find(names, r"(^|/)posts/[^/]+\.html?$")
    # Medium's post files are h-entry microformats with a data-field="body" section.
    if posts and b'data-field="body"' in archive.read(posts[0], 50_000_000)[:200_000]:
        return MEDIUM
    return None


def detect_export(path: Path) -> ExportKind | None:
    """Which platform export ``path`` (a .zip or a folder) is, or None."""
    if path.is_file() and not zipfile.is_zipfile(path):
        return None
    try:
        archive = Archive(path)
    except (InvalidInput, zipfile.BadZipFile, OSError):
        return None
    try:
        return _kind_of(archive)
    except InvalidInput:
        return None
    finally:
        archive.close()


def read_export(kind: ExportKind, path: Path, *, max_bytes: int, publication_url: str | None) -> Iterator[Item]:
    archive = Archive(path)
    try:
        yield from archive.refused
        yield from kind.read(archive, max_bytes, publication_url)
    finally:
        archive.close()
