"""API keys (stored as SHA-256 hashes; the key itself is shown once) and the query log."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from twin_platform.adapters.postgres.tables import api_keys, query_log

KEY_PREFIX = "twin_"


class ApiKeyError(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str) -> str:
        """A new key for ``name``; returns the key, which is not stored and cannot be shown again."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ApiKeyError("an API key name is 1 to 100 characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(api_keys).values(id=uuid.uuid4(), name=name, prefix=key[:12], key_hash=hash_key(key))
                )
        except sa.exc.IntegrityError:
            raise ApiKeyError(f"an API key named {name!r} exists already (revoke it first)") from None
        return key

    def verify(self, key: str) -> str | None:
        """The key's name when it is valid and not revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        stmt = (
            sa.update(api_keys)
            .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
            .values(last_used_at=sa.func.now())
            .returning(api_keys.c.name)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def revoke(self, name: str) -> bool:
        stmt = (
            sa.update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now(), name=name + "#revoked-" + uuid.uuid4().hex[:8])
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).all()
        return [ApiKey(r.name, r.prefix, r.created_at, r.last_used_at, r.revoked_at) for r in rows]


class QueryLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, entry: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(query_log).values(id=uuid.uuid4(), **entry))
