"""Decoding bytes and turning HTML into text with its paragraphs kept."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bs4 import BeautifulSoup

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_BLOCK_TAGS = (
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "li",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "hr",
    "figure",
    "figcaption",
)


class InvalidInput(ValueError):
    """An input that cannot be imported; the message is the rejection reason."""


def decode(data: bytes, *, html: bool = False) -> str:
    """UTF-8 (a BOM is allowed); HTML may declare another charset in a ``<meta>`` tag."""
    encoding = "utf-8-sig"
    if html:
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            name = declared.group(1).decode("ascii")
            try:
                encoding = codecs.lookup(name).name
            except LookupError as exc:
                raise InvalidInput(f"declares an unknown charset {name!r}") from exc
            encoding = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise InvalidInput(
            f"is not valid {encoding.removesuffix('-sig').upper()}: byte 0x{bad} at offset {exc.start} "
            "(re-save the file as UTF-8)"
        ) from exc


def collapse_blank_lines(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class HtmlPage:
    title: str
    text: str
    canonical_url: str | None
    published: str | None
    author: str | None
    language: str | None


def _meta(soup: BeautifulSoup, *names: str) -> str | None:
    for name in names:
        tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
        if tag is not None and tag.get("content"):
            return str(tag["content"]).strip()
    return None


def parse_html(markup: str) -> HtmlPage:
    """Title, canonical URL, date, author and paragraph-preserving text of an HTML page."""
    soup = BeautifulSoup(markup, "lxml")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    title = _meta(soup, "og:title") or (soup.title.get_text(" ", strip=True) if soup.title else "")
    h1 = soup.find("h1")
    if not title and h1 is not None:
        title = h1.get_text(" ", strip=True)
    canonical = soup.find("link", rel="canonical")
    canonical_url = str(canonical["href"]).strip() if canonical is not None and canonical.get("href") else None
    canonical_url = canonical_url or _meta(soup, "og:url")
    published = _meta(soup, "article:published_time", "date", "dc.date", "pubdate")
    if published is None:
        time_tag = soup.find("time", attrs={"datetime": True})
        published = str(time_tag["datetime"]) if time_tag is not None else None
    html_tag = soup.find("html")
    language = str(html_tag["lang"]).strip() if html_tag is not None and html_tag.get("lang") else None
    body = soup.find("article") or soup.find("main") or soup.body or soup
    for tag in body.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    text = collapse_blank_lines(re.sub(r"[ \t]+", " ", body.get_text()))
    return HtmlPage(
        title=title,
        text=text,
        canonical_url=canonical_url,
        published=published,
        author=_meta(soup, "author", "article:author"),
        language=language,
    )


def shown(value: object, limit: int = 80) -> str:
    """``value`` as a rejection reason quotes it: its repr, shortened so a huge value cannot flood the report."""
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def parse_date(value: object, *, field: str) -> datetime | None:
    """A front-matter or metadata date (a YAML date, datetime or ISO-8601 string) in UTC.

    A value without a time zone is taken as UTC; one that leaves the years 1-9999 once converted to
    UTC (``9999-12-31T23:00-05:00``) cannot be stored and is refused like any other bad date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{field} {shown(value)} is not an ISO-8601 date") from None
    else:
        raise InvalidInput(f"{field} {shown(value)} is not a date (expected YYYY-MM-DD or an ISO-8601 date and time)")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field} {shown(value)} is out of range once converted to UTC") from None
