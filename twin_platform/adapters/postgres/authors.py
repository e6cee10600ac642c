"""The author registry in Postgres (authors are always kept here, whatever the warehouse backend)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from twin_platform.adapters.postgres.tables import authors
from twin_platform.domain.authors import Author, find_author


def _to_author(row: Any) -> Author:
    return Author(
        id=row.id,
        full_name=row.full_name,
        aliases=tuple(row.aliases),
        links=row.links,
        imports=tuple(row.imports),
        respect_robots_txt=row.respect_robots_txt,
    )


class PostgresAuthorRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, author: Author) -> Author:
        """Insert or replace an author (matched by id)."""
        values = {
            "id": author.id,
            "full_name": author.full_name,
            "aliases": list(author.aliases),
            "links": {platform.value: list(urls) for platform, urls in author.links.items()},
            "imports": list(author.imports),
            "respect_robots_txt": author.respect_robots_txt,
        }
        stmt = insert(authors).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[authors.c.id],
            set_={**{k: stmt.excluded[k] for k in values if k != "id"}, "updated_at": sa.func.now()},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
        return author

    def get(self, author_id: str) -> Author | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(authors).where(authors.c.id == author_id)).one_or_none()
        return _to_author(row) if row else None

    def find_by_name(self, name: str) -> Author | None:
        return find_author(self.list(), name)

    def list(self) -> list[Author]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(authors).order_by(authors.c.id)).all()
        return [_to_author(row) for row in rows]
