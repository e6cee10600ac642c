"""HTTP cache validators (ETag / Last-Modified) per crawled URL, for conditional re-crawls."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from twin_platform.adapters.postgres.tables import crawl_validators
from twin_platform.domain.crawling import Validators


class PostgresValidatorStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, urls: list[str]) -> dict[str, Validators]:
        if not urls:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(crawl_validators).where(crawl_validators.c.url.in_(urls))).all()
        return {row.url: Validators(etag=row.etag, last_modified=row.last_modified) for row in rows}

    def save(self, validators: Mapping[str, Validators]) -> None:
        rows = [{"url": url, "etag": v.etag, "last_modified": v.last_modified} for url, v in validators.items()]
        if not rows:
            return
        stmt = insert(crawl_validators)
        stmt = stmt.on_conflict_do_update(
            index_elements=[crawl_validators.c.url],
            set_={
                "etag": stmt.excluded.etag,
                "last_modified": stmt.excluded.last_modified,
                "updated_at": sa.func.now(),
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
