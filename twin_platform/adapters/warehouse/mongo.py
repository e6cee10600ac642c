"""The document warehouse in MongoDB (``TWIN_MONGODB_URL``), for teams whose warehouse already lives there.

Each document is written atomically; a batch is not (a multi-document transaction needs a replica
set), but every write is idempotent, so re-running an interrupted import completes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database

from twin_platform.domain.documents import RawDocument, UpsertOutcome, document_id, plan_upsert, utcnow
from twin_platform.domain.ports import ChangeBatch, DocumentQuery

_COUNTER_ID = "raw_documents_revision"


def _to_document(record: dict[str, Any]) -> RawDocument:
    fields = {key: value for key, value in record.items() if key not in {"_id", "content_hash"}}
    return RawDocument(**fields)


class MongoWarehouse:
    """Implements :class:`twin_platform.domain.ports.DocumentWarehouse` on a MongoDB database."""

    backend = "mongodb"

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self.documents = database["raw_documents"]
        self.counters = database["counters"]
        self.documents.create_index([("author_id", ASCENDING), ("source_url", ASCENDING)], unique=True)
        self.documents.create_index([("revision", ASCENDING)])
        self.documents.create_index([("author_id", ASCENDING), ("platform", ASCENDING), ("category", ASCENDING)])

    def _next_revisions(self, count: int) -> int:
        """Reserve ``count`` revisions; returns the first."""
        counter = self.counters.find_one_and_update(
            {"_id": _COUNTER_ID}, {"$inc": {"value": count}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        if counter is None:  # upsert=True with ReturnDocument.AFTER always returns the counter
            raise RuntimeError("MongoDB did not return the revision counter")
        return int(counter["value"]) - count + 1

    @staticmethod
    def _record(document: RawDocument, revision: int) -> dict[str, Any]:
        record = document.model_dump(mode="python")
        record.update(
            category=document.category.value,
            platform=document.platform.value,
            content_hash=document.content_hash,
            revision=revision,
        )
        return record

    def upsert_many(self, documents: Sequence[RawDocument]) -> list[UpsertOutcome]:
        if not documents:
            return []
        ids = [doc.id for doc in documents]
        if len(set(ids)) != len(ids):
            raise ValueError("upsert_many got the same (author, source URL) twice in one batch")
        previous = [old for doc in documents for old in doc.previous_ids]
        existing = {
            record["_id"]: _to_document(record) for record in self.documents.find({"_id": {"$in": ids + previous}})
        }
        now = utcnow()
        # A record under a previous URL of a document moves to its current URL, history and all.
        former = {doc.id: [existing[old] for old in doc.previous_ids if old in existing] for doc in documents}
        plans = [
            plan_upsert(existing.get(doc.id) or (former[doc.id][0] if former[doc.id] else None), doc, now)
            for doc in documents
        ]
        changed = sum(1 for outcome, _ in plans if outcome is not UpsertOutcome.UNCHANGED)
        revision = self._next_revisions(changed) if changed else 0
        for doc, (outcome, stored) in zip(documents, plans, strict=True):
            if outcome is UpsertOutcome.UNCHANGED:
                self.documents.update_one({"_id": doc.id}, {"$set": {"last_seen": now}})
            else:
                self.documents.update_one({"_id": doc.id}, {"$set": self._record(stored, revision)}, upsert=True)
                revision += 1
            if former[doc.id]:
                # Only once the document is safe under its new id: an interrupted move is finished by the next run.
                self.documents.delete_many({"_id": {"$in": [old.id for old in former[doc.id]]}})
        return [outcome for outcome, _ in plans]

    def get(self, author_id: str, source_url: str) -> RawDocument | None:
        record = self.documents.find_one({"_id": document_id(author_id, source_url)})
        return _to_document(record) if record else None

    def find(self, query: DocumentQuery) -> list[RawDocument]:
        criteria: dict[str, Any] = {}
        if query.author_id is not None:
            criteria["author_id"] = query.author_id
        if query.platform is not None:
            criteria["platform"] = query.platform.value
        if query.category is not None:
            criteria["category"] = query.category.value
        if query.updated_since is not None:
            criteria["updated_at"] = {"$gt": query.updated_since}
        if not query.include_deleted:
            criteria["deleted_at"] = None
        cursor = self.documents.find(criteria).sort("revision", ASCENDING)
        if query.limit is not None:
            cursor = cursor.limit(query.limit)
        return [_to_document(record) for record in cursor]

    def tombstone(self, author_id: str, source_urls: Sequence[str]) -> int:
        live = list(
            self.documents.find(
                {"author_id": author_id, "source_url": {"$in": list(source_urls)}, "deleted_at": None},
                {"_id": 1},
            )
        )
        if not live:
            return 0
        now = utcnow()
        revision = self._next_revisions(len(live))
        modified = 0
        for offset, record in enumerate(live):
            result = self.documents.update_one(
                {"_id": record["_id"], "deleted_at": None},
                {"$set": {"deleted_at": now, "updated_at": now, "revision": revision + offset}},
            )
            modified += result.modified_count
        return modified

    def changes_since(self, cursor: int, limit: int = 1000) -> ChangeBatch:
        records = self.documents.find({"revision": {"$gt": cursor}}).sort("revision", ASCENDING).limit(limit)
        documents = [_to_document(record) for record in records]
        return ChangeBatch(documents=documents, cursor=documents[-1].revision if documents else cursor)

    def count(self, author_id: str | None = None, include_deleted: bool = False) -> int:
        criteria: dict[str, Any] = {}
        if author_id is not None:
            criteria["author_id"] = author_id
        if not include_deleted:
            criteria["deleted_at"] = None
        return int(self.documents.count_documents(criteria))
