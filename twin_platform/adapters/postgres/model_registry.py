"""The model registry in Postgres: trained twins (``models``) and their release history (``model_releases``).

Invariants, kept by this module and backed by the schema:

- at most one model per author is ``released`` (a partial unique index); releasing another retires it;
- every state change writes a history row in the same transaction, so the history explains the states;
- state changes are serialized by one advisory lock (releases are rare; two concurrent releases of one
  author must not both see the old release as current);
- the *released twin* of an author is its model in state ``released``; the one model the API serves is
  that of a named author, else the model released most recently across authors (``current``).

Rollback walks the history: the model released again is the author's most recent release that was not
itself rolled back, so rolling back twice steps back twice.

``import_json`` moves entries of the former ``models/registry.json`` in once (``open_runtime`` calls it).
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from twin_platform.adapters.postgres.tables import authors, model_releases, models
from twin_platform.domain.models import (
    Gate,
    Lineage,
    ModelEntry,
    ReleaseAction,
    ReleaseEvent,
    failed_gates,
    json_safe,
)

logger = logging.getLogger(__name__)

MIGRATED = "migrated from registry.json"


class RegistryError(Exception):
    """A registry operation cannot be done; the message says why."""


class UnknownModel(RegistryError):
    """No model has this version, or the author has no released model to act on."""


class ReleaseRefused(RegistryError):
    """A release was refused: gates failed or are missing, and it was not forced."""


@dataclass
class ImportReport:
    """What ``import_json`` did: versions imported, already present, and skipped (with the reason)."""

    imported: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _entry(row: Any) -> ModelEntry:
    return ModelEntry(
        version=row.version,
        name=row.name,
        author=row.author_id,
        created_at=row.created_at,
        uri=row.uri,
        lineage=Lineage.model_validate(row.lineage),
        metrics=row.metrics,
        evaluation=row.evaluation,
        state=row.state,
        released_at=row.released_at,
        release_uri=row.release_uri,
    )


def _event(row: Any) -> ReleaseEvent:
    return ReleaseEvent(
        id=row.id,
        version=row.version,
        action=row.action,
        reason=row.reason,
        gates=[Gate.model_validate(g) for g in row.gates],
        actor=row.actor,
        at=row.at,
    )


def _gates_json(gates: Sequence[Gate]) -> list[Any]:
    return [json_safe(gate.model_dump(mode="json")) for gate in gates]


# Releases happen a few times a day at most: one lock for all of them keeps the reasoning simple.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('twin_platform.model_registry'))")
_NOW = sa.func.now()


class ModelRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- reading -------------------------------------------------------------------------------------

    def get(self, version: str) -> ModelEntry | None:
        with self.engine.connect() as conn:
            return self._find(conn, version)

    def list(self, author: str | None = None) -> list[ModelEntry]:
        """Every model (of ``author``), newest first."""
        query = sa.select(models).order_by(models.c.created_at.desc(), models.c.version)
        if author is not None:
            query = query.where(models.c.author_id == author)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def current(self, author: str | None = None) -> ModelEntry | None:
        """The released twin of ``author``; with no author given, the model released most recently across
        authors (what a single-model server such as the API serves). ``None`` when nothing is released."""
        with self.engine.connect() as conn:
            return self._current(conn, author)

    def history(self, version: str | None = None) -> builtins.list[ReleaseEvent]:
        """The release history (of ``version``), oldest first."""
        query = sa.select(model_releases).order_by(model_releases.c.id)
        if version is not None:
            query = query.where(model_releases.c.version == version)
        with self.engine.connect() as conn:
            return [_event(row) for row in conn.execute(query)]

    @contextmanager
    def publication_lock(self, author: str) -> Iterator[None]:
        """Hold, across processes, the right to publish ``author``'s release for serving: whoever moves the
        author's S3 pointer and then the registry holds it, so the last pointer written and the registry's
        release cannot disagree (a session-level advisory lock, held on a connection of its own)."""
        key = {"key": f"twin_platform.release_publication:{author}"}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:key))"), key)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:key))"), key)

    # --- writing -------------------------------------------------------------------------------------

    def register(self, entry: ModelEntry, *, actor: str = "training") -> ModelEntry:
        """Add a candidate, or refresh a registered version's ``uri``, ``lineage`` and ``metrics`` (and its
        evaluation when ``entry`` has one). A version keeps its name, author, creation time and state: the
        same artifact trained again is the same model, whatever it was called and wherever it is released.
        Returns the stored entry."""
        if entry.state != "candidate" or entry.released_at is not None:
            raise ValueError("register a candidate (state 'candidate', no released_at), then release() it")
        lineage = entry.lineage.model_dump(mode="json")
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            existing = self._find(conn, entry.version)
            if existing is None:
                self._check_author(conn, entry.author)
                conn.execute(
                    sa.insert(models).values(
                        version=entry.version,
                        name=entry.name,
                        author_id=entry.author,
                        created_at=entry.created_at,
                        uri=entry.uri,
                        lineage=lineage,
                        metrics=entry.metrics,
                        evaluation=entry.evaluation,
                    )
                )
                self._record(conn, entry.version, "register", "", [], actor)
            elif existing.author != entry.author:
                raise RegistryError(
                    f"version {entry.version} is registered for author {existing.author!r}, not {entry.author!r}"
                )
            else:
                values: dict[str, Any] = {"uri": entry.uri, "lineage": lineage, "metrics": entry.metrics}
                if entry.evaluation is not None:
                    values["evaluation"] = entry.evaluation
                conn.execute(sa.update(models).where(models.c.version == entry.version).values(**values))
            return self._require(conn, entry.version)

    def record_evaluation(self, version: str, evaluation: dict[str, Any]) -> ModelEntry:
        """Store (replace) the evaluation of ``version``: its JSON as given (NaN becomes null)."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(models).where(models.c.version == version).values(evaluation=json_safe(evaluation))
            ).rowcount
            if not updated:
                raise UnknownModel(f"no model has version {version!r}")
            return self._require(conn, version)

    @staticmethod
    def check_release(version: str, gates: Sequence[Gate], *, reason: str, force: bool = False) -> None:
        """Raise what ``release`` would refuse with, before anything is done (``ReleaseRefused``, or
        ``ValueError`` for a forced release without a reason)."""
        if force and not reason.strip():
            raise ValueError("a forced release needs a reason")
        if not force:
            if not gates:
                raise ReleaseRefused(f"{version}: no gate results; evaluate it first, or force the release")
            failed = failed_gates(list(gates))
            if failed:
                raise ReleaseRefused(f"{version}: gates failed: {', '.join(g.name for g in failed)}")

    def release(
        self,
        version: str,
        *,
        reason: str,
        gates: Sequence[Gate],
        actor: str,
        force: bool = False,
        release_uri: str | None = None,
    ) -> ModelEntry:
        """Make ``version`` its author's released twin; the author's previous release is retired.

        Without ``force`` every gate must have passed and there must be at least one (``ReleaseRefused``
        otherwise). ``force`` needs a reason and is recorded as ``force-release``. ``release_uri`` is where the
        release was published for serving (recorded when given). Releasing the version that is already released
        changes nothing but a new ``release_uri``."""
        gates = list(gates)
        self.check_release(version, gates, reason=reason, force=force)
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            entry = self._require(conn, version)
            if entry.released:
                if release_uri is not None and release_uri != entry.release_uri:
                    self._set_release_uri(conn, version, release_uri)
                    return self._require(conn, version)
                return entry
            action: ReleaseAction = "force-release" if force else "release"
            self._make_released(conn, entry, reason, gates, actor, action)
            if release_uri is not None:
                self._set_release_uri(conn, version, release_uri)
            return self._require(conn, version)

    def refuse(self, version: str, *, gates: Sequence[Gate], reason: str, actor: str) -> ModelEntry:
        """Mark ``version`` refused (its gates failed). A released model cannot be refused: roll it back."""
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            entry = self._require(conn, version)
            if entry.released:
                raise RegistryError(f"{version} is the released twin of {entry.author}; roll it back first")
            conn.execute(sa.update(models).where(models.c.version == version).values(state="refused"))
            self._record(conn, version, "refuse", reason, gates, actor)
            return self._require(conn, version)

    def rollback_target(self, author: str | None = None) -> tuple[ModelEntry, ModelEntry]:
        """What ``rollback(author)`` would do, without doing it: (the released twin it retires, the model it
        releases again). Raises as ``rollback`` does when there is nothing to roll back."""
        with self.engine.connect() as conn:
            current, previous = self._rollback_pair(conn, author)
            return current, self._require(conn, previous)

    def rollback(
        self,
        author: str | None = None,
        *,
        reason: str,
        actor: str,
        expect: str | None = None,
        release_uri: str | None = None,
    ) -> ModelEntry:
        """Retire the released twin of ``author`` (default: the model ``current()`` names) and release again
        the author's most recent earlier release that was not rolled back itself. Returns the model now
        released; ``RegistryError`` when there is nothing to roll back to (the release stays), or when
        ``expect`` is given and another version would be released (the history changed meanwhile).
        ``release_uri`` is recorded as where the restored release is published for serving."""
        if not reason.strip():
            raise ValueError("a rollback needs a reason")
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            current, previous = self._rollback_pair(conn, author)
            if expect is not None and previous != expect:
                raise RegistryError(
                    f"the release history of {current.author} changed meanwhile: rollback would now release "
                    f"{previous}, not {expect}; nothing was rolled back"
                )
            # The rolled-back version leaves first: the partial unique index allows one released per author.
            conn.execute(sa.update(models).where(models.c.version == current.version).values(state="retired"))
            self._record(conn, current.version, "rollback", reason, [], actor)
            conn.execute(
                sa.update(models).where(models.c.version == previous).values(state="released", released_at=_NOW)
            )
            self._record(conn, previous, "release", f"rollback from {current.version}: {reason}", [], actor)
            if release_uri is not None:
                self._set_release_uri(conn, previous, release_uri)
            return self._require(conn, previous)

    def import_json(self, path: Path, *, actor: str = "migration") -> ImportReport | None:
        """Import the entries of a ``registry.json`` of earlier versions (``{"models": [{version, name,
        author, path, uri, created_at, released, lineage, metrics}, ...]}``), then rename the file to
        ``registry.json.migrated``. ``None`` when there is no file.

        Idempotent: versions already registered are left as they are. Per author, the newest released
        entry (by ``created_at``, as the JSON registry chose) becomes the released twin and older released
        ones are retired, each with history rows saying they were migrated. Entries of authors that are not
        registered cannot be kept (models reference their author) and are skipped with a warning; the
        renamed file still holds them."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None  # another process migrated it a moment ago
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{path} (the former model registry) cannot be read: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("models", []), list):
            raise RegistryError(f'{path} (the former model registry) is not {{"models": [...]}}')
        report = ImportReport()
        entries = [e for e in raw.get("models", []) if isinstance(e, dict)]
        entries.sort(key=lambda e: str(e.get("created_at", "")))
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            for item in entries:
                version = str(item.get("version", ""))
                try:
                    entry = _from_json(item)
                except ValueError as exc:
                    report.skipped[version or "?"] = f"not a valid entry: {exc}"
                    continue
                if self._find(conn, entry.version) is not None:
                    report.present.append(entry.version)
                    continue
                if not self._author_exists(conn, entry.author):
                    report.skipped[entry.version] = f"author {entry.author!r} is not registered"
                    continue
                conn.execute(
                    sa.insert(models).values(
                        version=entry.version,
                        name=entry.name,
                        author_id=entry.author,
                        created_at=entry.created_at,
                        uri=entry.uri,
                        lineage=entry.lineage.model_dump(mode="json"),
                        metrics=entry.metrics,
                    )
                )
                self._record(conn, entry.version, "register", MIGRATED, [], actor)
                if item.get("released"):
                    self._make_released(conn, entry, MIGRATED, [], actor, "release", released_at=entry.created_at)
                report.imported.append(entry.version)
        path.replace(path.with_name(path.name + ".migrated"))
        for version, why in report.skipped.items():
            logger.warning("model %s in %s was not imported: %s", version, path, why)
        return report

    # --- inside a transaction ------------------------------------------------------------------------

    def _find(self, conn: Connection, version: str) -> ModelEntry | None:
        row = conn.execute(sa.select(models).where(models.c.version == version)).one_or_none()
        return _entry(row) if row else None

    def _require(self, conn: Connection, version: str) -> ModelEntry:
        entry = self._find(conn, version)
        if entry is None:
            raise UnknownModel(f"no model has version {version!r}")
        return entry

    def _current(self, conn: Connection, author: str | None) -> ModelEntry | None:
        query = sa.select(models).where(models.c.state == "released")
        if author is not None:
            query = query.where(models.c.author_id == author)
        row = conn.execute(query.order_by(models.c.released_at.desc(), models.c.version).limit(1)).one_or_none()
        return _entry(row) if row else None

    def _rollback_pair(self, conn: Connection, author: str | None) -> tuple[ModelEntry, str]:
        current = self._current(conn, author)
        if current is None:
            raise UnknownModel(f"{author} has no released twin to roll back" if author else "nothing is released")
        previous = self._previous_release(conn, current)
        if previous is None:
            raise RegistryError(f"{current.author} has no earlier release to roll back to ({current.version} stays)")
        return current, previous

    def _set_release_uri(self, conn: Connection, version: str, release_uri: str) -> None:
        conn.execute(sa.update(models).where(models.c.version == version).values(release_uri=release_uri))

    def _previous_release(self, conn: Connection, current: ModelEntry) -> str | None:
        """The author's version, other than ``current``, whose latest release-or-rollback event is a
        release, newest such event first; only retired models qualify (a refused one stays refused)."""
        latest = (
            sa.select(
                model_releases.c.version,
                model_releases.c.action,
                model_releases.c.id,
                sa.func.row_number()
                .over(partition_by=model_releases.c.version, order_by=model_releases.c.id.desc())
                .label("n"),
            )
            .join(models, models.c.version == model_releases.c.version)
            .where(
                models.c.author_id == current.author,
                models.c.version != current.version,
                models.c.state == "retired",
                model_releases.c.action.in_(["release", "force-release", "rollback"]),
            )
            .subquery()
        )
        query = (
            sa.select(latest.c.version)
            .where(latest.c.n == 1, latest.c.action != "rollback")
            .order_by(latest.c.id.desc())
            .limit(1)
        )
        version: str | None = conn.execute(query).scalar_one_or_none()
        return version

    def _make_released(
        self,
        conn: Connection,
        entry: ModelEntry,
        reason: str,
        gates: Sequence[Gate],
        actor: str,
        action: ReleaseAction,
        released_at: datetime | None = None,
    ) -> None:
        previous = self._current(conn, entry.author)
        if previous is not None:
            conn.execute(sa.update(models).where(models.c.version == previous.version).values(state="retired"))
            self._record(conn, previous.version, "retire", f"replaced by {entry.version}", [], actor)
        conn.execute(
            sa.update(models)
            .where(models.c.version == entry.version)
            .values(state="released", released_at=released_at or _NOW)
        )
        self._record(conn, entry.version, action, reason, gates, actor)

    def _record(
        self, conn: Connection, version: str, action: ReleaseAction, reason: str, gates: Sequence[Gate], actor: str
    ) -> None:
        conn.execute(
            sa.insert(model_releases).values(
                version=version, action=action, reason=reason, gates=_gates_json(gates), actor=actor
            )
        )

    def _author_exists(self, conn: Connection, author: str) -> bool:
        return conn.execute(sa.select(authors.c.id).where(authors.c.id == author)).first() is not None

    def _check_author(self, conn: Connection, author: str) -> None:
        if not self._author_exists(conn, author):
            raise RegistryError(f"author {author!r} is not registered (twin authors add)")


def _from_json(item: dict[str, Any]) -> ModelEntry:
    """An entry of the former JSON registry as a candidate ``ModelEntry`` (its ``released`` flag is applied
    by the caller). ``uri`` there was the Hub URL when the model was pushed; the artifact itself is ``path``
    (a local folder, or the local copy of an ``s3://`` artifact, which is preferred: it is reachable from
    any machine)."""
    lineage = item.get("lineage") or {}
    uri = str(item.get("uri") or "")
    return ModelEntry(
        version=str(item.get("version", "")),
        name=str(item.get("name") or f"twin-{item.get('version')}"),
        author=str(item.get("author") or lineage.get("author") or ""),
        created_at=item.get("created_at"),
        uri=uri if uri.startswith("s3://") else str(item.get("path", "")),
        lineage=Lineage(**{k: lineage[k] for k in Lineage.model_fields if k in lineage}),
        metrics=item.get("metrics") or {},
    )
