"""Clean raw documents per category.

Articles and posts lose navigation menus, share and subscribe widgets, footers, image captions and
link clutter; markdown/HTML becomes plain text with paragraphs kept (hard-wrapped lines rejoined).
Repositories keep their code blocks byte for byte. Everything is Unicode-normalised (NFKC) and
whitespace-normalised. PII masking (emails, phone numbers) is optional.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from twin_platform.domain.documents import Category

CLEANER_VERSION = "clean-v1"

_BOILERPLATE = re.compile(
    r"""^(
        share|share\ this\ post|copy\ link|facebook|email|note|other|twitter|linkedin|reddit|print|
        subscribe|subscribe\ now|subscribesign\ in|sign\ in|sign\ up|log\ in|comments?|restacks|top|latest|
        discussions|no\ posts|ready\ for\ more\??|discussion\ about\ this\ post|previous|next|previousnext|
        start\ writingget\ the\ app|substack\ is\ the\ home\ for\ great\ culture|
        privacy\ ∙\ terms\ ∙\ collection\ notice|read\ more|continue\ reading|listen\ to\ this\ article|
        follow|follow\ me|home|about|menu|table\ of\ contents|contents|sections|
        this\ site\ requires\ javascript\ to\ run\ correctly.*|unblock\ scripts|
        (image|photo|figure|source)\s*(by|:|from)\b.*|
        (©|\(c\)|copyright\b).*|all\ rights\ reserved\.?|
        thanks\ for\ reading.*subscribe.*|.*is\ a\ reader-supported\ publication.*|
        \d+\s*(min\ read|likes?|claps?|comments?)?|
        [a-z0-9.-]+\.(com|io|dev|org|net|app|substack\.com)|
        [#*_\-\s·∙|>]*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d+[.)])\s+(.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s*(.*?)\s*#*\s*$")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_BARE_URL = re.compile(r"<?https?://[^\s>)\]]+>?")
_EMPHASIS = re.compile(r"(\*\*|__|(?<![\w*])\*(?!\s)|(?<![\w_])_(?!\s))")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d(?!\w)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"[.!?:;)\"”’]$")


@dataclass(frozen=True)
class CleaningOptions:
    mask_pii: bool = False


def normalize_unicode(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return text.replace("\u00a0", " ")


def mask_pii(text: str) -> str:
    text = _EMAIL.sub("[EMAIL]", text)
    return _PHONE.sub(lambda m: "[PHONE]" if sum(c.isdigit() for c in m.group()) >= 9 else m.group(), text)


def _strip_markup(line: str) -> str:
    line = _IMAGE.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _BARE_URL.sub("", line)
    line = _EMPHASIS.sub("", line)
    return re.sub(r"[ \t]+", " ", line).strip()


def _is_nav_item(text: str) -> bool:
    words = text.split()
    return len(words) <= 6 and not _SENTENCE_END.search(text)


def _drop_navigation(lines: list[str]) -> list[str]:
    """Remove runs of 3+ short list items without sentence punctuation: menus, tables of contents."""
    keep = [True] * len(lines)
    run: list[int] = []

    def close_run() -> None:
        if len(run) >= 3:
            for index in run:
                keep[index] = False
        run.clear()

    for index, line in enumerate(lines):
        item = _LIST_ITEM.match(line)
        if item and _is_nav_item(_strip_markup(item.group(1))):
            run.append(index)
        elif line.strip():
            close_run()
    close_run()
    return [line for line, kept in zip(lines, keep, strict=True) if kept]


def clean_prose(text: str) -> str:
    """Articles and posts: plain paragraphs, no widgets or navigation."""
    lines = _drop_navigation(normalize_unicode(text).split("\n"))
    seen_short: set[str] = set()
    blocks: list[list[str]] = [[]]
    for raw in lines:
        heading = _HEADING.match(raw)
        item = _LIST_ITEM.match(raw)
        body = heading.group(1) if heading else item.group(1) if item else raw
        line = _strip_markup(body)
        if not line:
            if blocks[-1]:
                blocks.append([])
            continue
        if _BOILERPLATE.match(line):
            continue
        key = line.casefold()
        if len(line.split()) <= 12:
            # Titles and widget text repeat (share boxes, sticky headers); the first copy is enough.
            if key in seen_short:
                continue
            seen_short.add(key)
        if heading or item:
            if blocks[-1]:
                blocks.append([])
            blocks[-1].append(f"- {line}" if item else line)
            blocks.append([])
        else:
            blocks[-1].append(line)
    paragraphs = [_join_wrapped(block) for block in blocks if block]
    return "\n\n".join(_rejoin_lists(paragraphs)).strip()


def _join_wrapped(lines: list[str]) -> str:
    """Rejoin hard-wrapped lines of one paragraph; ``fine-`` + ``tuning`` becomes ``fine-tuning``."""
    text = lines[0]
    for line in lines[1:]:
        text += line if re.search(r"[A-Za-z]-$", text) else " " + line
    return text


def _rejoin_lists(paragraphs: list[str]) -> list[str]:
    """Consecutive list items form one paragraph, one item per line."""
    merged: list[str] = []
    for paragraph in paragraphs:
        if paragraph.startswith("- ") and merged and merged[-1].split("\n")[-1].startswith("- "):
            merged[-1] += "\n" + paragraph
        else:
            merged.append(paragraph)
    return merged


def clean_repository(text: str) -> str:
    """Repositories: code blocks untouched; prose outside them only whitespace-normalised."""
    out: list[str] = []
    in_code = False
    for line in normalize_unicode(text).split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            out.append(line.rstrip())
            continue
        out.append(line.rstrip() if in_code else re.sub(r"[ \t]+", " ", line).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def clean_document(category: Category, text: str, options: CleaningOptions | None = None) -> str:
    options = options or CleaningOptions()
    cleaned = clean_repository(text) if category is Category.REPOSITORY else clean_prose(text)
    return mask_pii(cleaned) if options.mask_pii else cleaned
