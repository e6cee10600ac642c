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

    def write_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows in one statement (one transaction: all or none)."""
        if rows:
            with self.engine.begin() as conn:
                # A crash may lose the last few hundred milliseconds of log rows, never a request's time.
                conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
                conn.execute(sa.insert(query_log), [{"id": uuid.uuid4(), **row} for row in rows])


class PostgresRateLimiter:
    """A token bucket per name in Postgres (``per_minute`` tokens, refilled continuously), so every API worker
    process and replica draws from the same bucket. One statement per request: the refill, the take and the
    verdict happen in a single atomic upsert."""

    def __init__(self, engine: Engine, per_minute: int) -> None:
        self.engine = engine
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0

    def acquire(self, name: str) -> float:
        """0 when the request may go ahead (a token was taken), else the seconds until a token is there."""
        params = {"bucket": name, "capacity": self.capacity, "rate": self.rate}
        # One statement, atomic on its own: autocommit spares the BEGIN and COMMIT round trips.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            row = conn.execute(_TAKE_TOKEN, params).one()
        return 0.0 if row.allowed else (1 - float(row.tokens)) / self.rate


# The bucket refilled up to now, then one token taken when there is one; `allowed` says which happened.
_REFILLED = "LEAST(:capacity, b.tokens + EXTRACT(EPOCH FROM (EXCLUDED.updated_at - b.updated_at)) * :rate)"
# The f-string joins constant fragments of this module; no user value is formatted in.
_TAKE_TOKEN = sa.text(
    "INSERT INTO api_rate_limits AS b (bucket, tokens, allowed, updated_at) "  # noqa: S608
    "VALUES (:bucket, :capacity - 1, true, clock_timestamp()) "
    f"ON CONFLICT (bucket) DO UPDATE SET tokens = {_REFILLED} - CASE WHEN {_REFILLED} >= 1 THEN 1 ELSE 0 END, "
    f"allowed = {_REFILLED} >= 1, updated_at = EXCLUDED.updated_at "
    "RETURNING tokens, allowed"
)
