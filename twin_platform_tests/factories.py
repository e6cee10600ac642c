"""Test data builders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin_platform.domain.documents import Category, Platform, RawDocument


def raw_document(author_id: str = "jane-doe", n: int = 1, **overrides: Any) -> RawDocument:
    fields: dict[str, Any] = {
        "author_id": author_id,
        "category": Category.ARTICLE,
        "platform": Platform.WEB,
        "source_url": f"https://jane.example.com/articles/{n}",
        "title": f"Article {n}",
        "content": f"Paragraph one of article {n}.\n\nParagraph two.",
        "published_at": datetime(2025, 1, n % 28 + 1, tzinfo=UTC),
        "language": "en",
        "metadata": {"tags": ["test"]},
    }
    fields.update(overrides)
    return RawDocument(**fields)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def markdown(title: str, body: str, **front: Any) -> str:
    lines = ["---", f'title: "{title}"', *(f"{k}: {v}" for k, v in front.items()), "---", "", body, ""]
    return "\n".join(lines)
