"""Split cleaned documents into chunks measured in the embedding model's own tokens.

all-MiniLM-L6-v2 silently truncates input past 256 word pieces, so no chunk may exceed the model's
limit. Per category:

- posts: the whole post when it fits, else like articles;
- articles: sentences packed into chunks of about ``target_tokens``, paragraph breaks kept, with
  ``overlap_tokens`` of trailing sentences repeated at the start of the next chunk;
- repositories: per file, split at blank lines between top-level blocks, then at lines, each chunk
  headed by its file path (and code fences re-opened), so code is never cut mid-line.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twin_platform.domain.documents import Category

CHUNKER_VERSION = "chunk-v2"  # v2: closing quotes after a sentence are kept
TokenCounter = Callable[[Sequence[str]], list[int]]

# A sentence ends at . ! ? … optionally followed by one closing quote or bracket, which stays with it.
_SENTENCE = re.compile(r"(?:(?<=[.!?…][\"”’)\]])|(?<=[.!?…]))\s+(?=[\"“(\[]?[A-Z0-9À-Ý])")
_FILE_HEADER = re.compile(r"^### (\S.*)$", re.MULTILINE)
_FENCE_OPEN = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 254  # the model's limit without its [CLS] and [SEP] tokens
    target_tokens: int = 200
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.target_tokens <= self.max_tokens:
            raise ValueError(f"target_tokens must be in 1..{self.max_tokens}, got {self.target_tokens}")
        if not 0 <= self.overlap_tokens < self.target_tokens:
            raise ValueError("overlap_tokens must be smaller than target_tokens")

    def fingerprint(self) -> str:
        return f"{CHUNKER_VERSION}:{self.max_tokens}:{self.target_tokens}:{self.overlap_tokens}"


@dataclass(frozen=True)
class Chunk:
    id: str
    index: int
    text: str
    tokens: int


def chunk_id(document_id: str, text: str) -> str:
    """Stable id from content: an unchanged chunk of an edited document keeps its id (and embedding)."""
    digest = hashlib.sha256(f"{document_id}\n{text}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    paragraph_start: bool


def _hard_split(text: str, count: TokenCounter, limit: int) -> list[str]:
    """Split one over-long sentence at word boundaries so each piece fits ``limit`` tokens."""
    words = text.split()
    sizes = count(words)
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word, size in zip(words, sizes, strict=True):
        if size > limit:  # a single absurd "word" (a hash, a URL): cut it by characters
            if current:
                pieces.append(" ".join(current))
                current, used = [], 0
            step = max(1, len(word) * limit // (size + 1))
            pieces.extend(word[i : i + step] for i in range(0, len(word), step))
            continue
        if used + size > limit and current:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    if current:
        pieces.append(" ".join(current))
    return pieces


def _units(text: str, count: TokenCounter, limit: int) -> list[_Unit]:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    sentences: list[tuple[str, bool]] = []
    for paragraph in paragraphs:
        parts = [s for s in _SENTENCE.split(paragraph) if s.strip()]
        sentences.extend((part.strip(), i == 0) for i, part in enumerate(parts))
    sizes = count([s for s, _ in sentences])
    units: list[_Unit] = []
    for (sentence, start), size in zip(sentences, sizes, strict=True):
        if size <= limit:
            units.append(_Unit(sentence, size, start))
            continue
        pieces = _hard_split(sentence, count, limit)
        for i, (piece, piece_size) in enumerate(zip(pieces, count(pieces), strict=True)):
            units.append(_Unit(piece, piece_size, start and i == 0))
    return units


def _join(units: Sequence[_Unit]) -> str:
    text = ""
    for i, unit in enumerate(units):
        text += unit.text if i == 0 else ("\n\n" if unit.paragraph_start else " ") + unit.text
    return text


def pack_prose(text: str, count: TokenCounter, options: ChunkingOptions) -> list[str]:
    units = _units(text, count, options.max_tokens)
    chunks: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    fresh = 0  # units in ``current`` that are not overlap from the previous chunk
    for unit in units:
        if current and used + unit.tokens > options.target_tokens and fresh:
            chunks.append(current)
            overlap: list[_Unit] = []
            carried = 0
            for previous in reversed(current):
                if carried + previous.tokens > options.overlap_tokens:
                    break
                overlap.insert(0, previous)
                carried += previous.tokens
            if carried + unit.tokens > options.max_tokens:
                overlap, carried = [], 0
            current, used, fresh = overlap, carried, 0
        current.append(unit)
        used += unit.tokens
        fresh += 1
    if current and fresh:
        chunks.append(current)
    return [_join(chunk) for chunk in chunks]


def _file_sections(text: str) -> list[tuple[str, str]]:
    headers = list(_FILE_HEADER.finditer(text))
    if not headers:
        return [("", text)]
    sections = []
    if text[: headers[0].start()].strip():
        sections.append(("", text[: headers[0].start()]))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        sections.append((header.group(1).strip(), text[header.end() : end]))
    return sections


def _code_blocks(body: str) -> tuple[str, list[str]]:
    """The fence language and the blocks of a section (blank-line separated, fences removed)."""
    lines = body.strip("\n").split("\n")
    language = ""
    if lines and (opening := _FENCE_OPEN.match(lines[0])):
        language = opening.group(1) or "text"
        lines = lines[1:-1] if lines[-1].strip() == "```" else lines[1:]
    blocks: list[str] = []
    current: list[str] = []
    for line in lines:
        # A blank line before an unindented line separates top-level blocks (functions, classes).
        if not line.strip() and current:
            current.append(line)
            continue
        if current and not current[-1].strip() and line and not line[0].isspace():
            blocks.append("\n".join(current).rstrip())
            current = []
        current.append(line)
    if current and "\n".join(current).strip():
        blocks.append("\n".join(current).rstrip())
    return language, blocks


def pack_code(text: str, count: TokenCounter, options: ChunkingOptions) -> list[str]:
    chunks: list[str] = []
    for path, body in _file_sections(text):
        language, blocks = _code_blocks(body)
        if not language:  # documentation inside a repository: prose rules, under the file's header
            header = f"### {path}\n\n" if path else ""
            budget = options.max_tokens - (count([header])[0] if header else 0)
            prose = ChunkingOptions(
                budget, min(options.target_tokens, budget), min(options.overlap_tokens, budget // 4)
            )
            chunks.extend(header + piece for piece in pack_prose(body, count, prose))
            continue
        head, tail = f"### {path}\n```{language}\n", "\n```"
        budget = options.max_tokens - count([head + tail])[0]
        pieces: list[str] = []
        for block in blocks:
            if count([block])[0] <= budget:
                pieces.append(block)
            else:  # a long function: split at lines, long lines at words
                for line in block.split("\n"):
                    pieces.extend(_hard_split(line, count, budget) if count([line])[0] > budget else [line])
        sizes = count(pieces)
        current: list[str] = []
        used = 0
        for piece, size in zip(pieces, sizes, strict=True):
            if current and used + size > budget:
                chunks.append(head + "\n".join(current) + tail)
                current, used = [], 0
            current.append(piece)
            used += size
        if current:
            chunks.append(head + "\n".join(current) + tail)
    return chunks


def chunk_document(
    document_id: str, category: Category, text: str, count: TokenCounter, options: ChunkingOptions
) -> list[Chunk]:
    """Chunks of one cleaned document, each within ``options.max_tokens`` word pieces, ids stable."""
    if category is Category.REPOSITORY:
        texts = pack_code(text, count, options)
    elif category is Category.POST and count([text])[0] <= options.max_tokens:
        texts = [text.strip()]
    else:
        texts = pack_prose(text, count, options)
    texts = [t for t in texts if t.strip()]
    sizes = count(texts)
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for text_, size in zip(texts, sizes, strict=True):
        pieces = [(text_, size)]
        if size > options.max_tokens:  # a safety net: the packers above should never get here
            hard = _hard_split(text_, count, options.max_tokens)
            pieces = list(zip(hard, count(hard), strict=True))
        for piece, piece_size in pieces:
            identifier = chunk_id(document_id, piece)
            if identifier in seen:  # the same text twice in one document adds nothing to the index
                continue
            seen.add(identifier)
            chunks.append(Chunk(id=identifier, index=len(chunks), text=piece, tokens=piece_size))
    return chunks
