"""One contract, every backend: Postgres (real, embedded), MongoDB (mongomock, and a real server when
``TWIN_TEST_MONGODB_URL`` is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from twin_platform.adapters.runtime import Runtime, mongo_client
from twin_platform.adapters.warehouse.mongo import MongoWarehouse
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform, UpsertOutcome
from twin_platform.domain.ports import DocumentQuery, DocumentWarehouse
from twin_platform_tests.factories import raw_document

BACKENDS = ["postgres", "mongomock", "mongodb"]


@pytest.fixture(params=BACKENDS)
def warehouse(request: pytest.FixtureRequest) -> Iterator[DocumentWarehouse]:
    if request.param == "postgres":
        runtime: Runtime = request.getfixturevalue("runtime")
        runtime.authors.save(Author(full_name="Jane Doe"))
        runtime.authors.save(Author(full_name="John Roe"))
        yield runtime.warehouse
    elif request.param == "mongomock":
        import mongomock

        yield MongoWarehouse(mongomock.MongoClient(tz_aware=True)["twin"])
    else:
        url = os.environ.get("TWIN_TEST_MONGODB_URL")
        if not url:
            pytest.skip("no MongoDB server here: set TWIN_TEST_MONGODB_URL to run this suite against a real one")
        client = mongo_client(url)
        name = f"twin_test_{uuid.uuid4().hex[:8]}"
        yield MongoWarehouse(client[name])
        client.drop_database(name)
        client.close()


def test_insert_then_unchanged_is_a_no_op(warehouse: DocumentWarehouse):
    docs = [raw_document(n=n) for n in range(1, 4)]
    assert warehouse.upsert_many(docs) == [UpsertOutcome.INSERTED] * 3
    cursor = warehouse.changes_since(0).cursor
    stored = warehouse.get("jane-doe", docs[0].source_url)
    assert stored is not None
    assert stored.version == 1

    assert warehouse.upsert_many(docs) == [UpsertOutcome.UNCHANGED] * 3
    again = warehouse.get("jane-doe", docs[0].source_url)
    assert again is not None
    assert (again.version, again.updated_at, again.revision) == (1, stored.updated_at, stored.revision)
    assert again.last_seen is not None
    assert stored.last_seen is not None
    assert again.last_seen >= stored.last_seen
    assert warehouse.changes_since(cursor).documents == []
    assert warehouse.count("jane-doe") == 3


def test_changed_content_bumps_version_and_cursor(warehouse: DocumentWarehouse):
    warehouse.upsert_many([raw_document(n=1), raw_document(n=2)])
    cursor = warehouse.changes_since(0).cursor
    before = warehouse.get("jane-doe", raw_document(n=1).source_url)
    outcomes = warehouse.upsert_many([raw_document(n=1, content="Rewritten."), raw_document(n=2)])
    assert outcomes == [UpsertOutcome.UPDATED, UpsertOutcome.UNCHANGED]
    after = warehouse.get("jane-doe", raw_document(n=1).source_url)
    assert before is not None
    assert after is not None
    assert after.version == 2
    assert after.content == "Rewritten."
    assert after.first_seen == before.first_seen
    assert after.updated_at is not None
    assert before.updated_at is not None
    assert after.updated_at > before.updated_at
    batch = warehouse.changes_since(cursor)
    assert [doc.source_url for doc in batch.documents] == [raw_document(n=1).source_url]
    assert batch.cursor > cursor
    assert warehouse.count() == 2


def test_same_url_for_two_authors_is_two_documents(warehouse: DocumentWarehouse):
    url = "https://shared.example.com/post"
    warehouse.upsert_many([raw_document(source_url=url), raw_document(author_id="john-roe", source_url=url)])
    assert warehouse.count() == 2
    assert warehouse.count("john-roe") == 1


def test_tombstones_are_visible_downstream_and_revivable(warehouse: DocumentWarehouse):
    docs = [raw_document(n=n) for n in range(1, 4)]
    warehouse.upsert_many(docs)
    cursor = warehouse.changes_since(0).cursor
    assert warehouse.tombstone("jane-doe", [docs[0].source_url, "https://never.stored"]) == 1
    assert warehouse.tombstone("jane-doe", [docs[0].source_url]) == 0  # already a tombstone

    assert warehouse.count("jane-doe") == 2
    assert warehouse.count("jane-doe", include_deleted=True) == 3
    live = warehouse.find(DocumentQuery(author_id="jane-doe"))
    assert docs[0].source_url not in {doc.source_url for doc in live}
    changes = warehouse.changes_since(cursor).documents
    assert [(doc.source_url, doc.is_tombstone) for doc in changes] == [(docs[0].source_url, True)]

    assert warehouse.upsert_many([docs[0]]) == [UpsertOutcome.UPDATED]
    revived = warehouse.get("jane-doe", docs[0].source_url)
    assert revived is not None
    assert not revived.is_tombstone
    assert revived.version == 2


def test_find_filters(warehouse: DocumentWarehouse):
    warehouse.upsert_many(
        [
            raw_document(n=1),
            raw_document(n=2, platform=Platform.MEDIUM, source_url="https://medium.com/@jane/2"),
            raw_document(n=3, category=Category.POST, source_url="https://jane.example.com/posts/3"),
            raw_document(author_id="john-roe", n=4),
        ]
    )
    assert len(warehouse.find(DocumentQuery(author_id="jane-doe"))) == 3
    medium = warehouse.find(DocumentQuery(platform=Platform.MEDIUM))
    assert [doc.source_url for doc in medium] == ["https://medium.com/@jane/2"]
    posts = warehouse.find(DocumentQuery(author_id="jane-doe", category=Category.POST))
    assert [doc.category for doc in posts] == [Category.POST]
    assert len(warehouse.find(DocumentQuery(limit=2))) == 2
    future = datetime.now(UTC) + timedelta(minutes=5)
    assert warehouse.find(DocumentQuery(updated_since=future)) == []
    past = datetime.now(UTC) - timedelta(minutes=5)
    assert len(warehouse.find(DocumentQuery(updated_since=past))) == 4


def test_changes_since_pages_in_revision_order(warehouse: DocumentWarehouse):
    warehouse.upsert_many([raw_document(n=n) for n in range(1, 6)])
    first = warehouse.changes_since(0, limit=2)
    second = warehouse.changes_since(first.cursor, limit=2)
    third = warehouse.changes_since(second.cursor, limit=2)
    urls = [doc.source_url for batch in (first, second, third) for doc in batch.documents]
    assert urls == [raw_document(n=n).source_url for n in range(1, 6)]
    assert warehouse.changes_since(third.cursor).documents == []


def test_duplicate_in_one_batch_is_refused_and_nothing_is_written(warehouse: DocumentWarehouse):
    with pytest.raises(ValueError, match="twice in one batch"):
        warehouse.upsert_many([raw_document(n=1), raw_document(n=1, content="other")])
    assert warehouse.count(include_deleted=True) == 0


def test_metadata_round_trips(warehouse: DocumentWarehouse):
    doc = raw_document(metadata={"tags": ["a", "b"], "nested": {"k": 1}, "unicode": "café ✓"})
    warehouse.upsert_many([doc])
    stored = warehouse.get(doc.author_id, doc.source_url)
    assert stored is not None
    assert stored.metadata == doc.metadata
    assert stored.content_hash == doc.content_hash


def test_postgres_batch_is_atomic(runtime: Runtime):
    """A failure inside a batch (an author that is not registered) stores none of the batch."""
    runtime.authors.save(Author(full_name="Jane Doe"))
    runtime.warehouse.upsert_many([raw_document(n=1)])
    with pytest.raises(sa.exc.IntegrityError):
        runtime.warehouse.upsert_many([raw_document(n=2), raw_document(author_id="nobody", n=3)])
    assert runtime.warehouse.count(include_deleted=True) == 1


LEGACY_URL = "file:///home/jane/writing/articles/a.md"


def test_a_document_under_a_previous_url_is_moved_not_duplicated(warehouse: DocumentWarehouse):
    warehouse.upsert_many([raw_document(n=1, source_url=LEGACY_URL), raw_document(n=2)])
    legacy = warehouse.get("jane-doe", LEGACY_URL)
    assert legacy is not None
    cursor = warehouse.changes_since(0).cursor

    moved = raw_document(n=1, source_url="file:articles/a.md", previous_source_urls=(LEGACY_URL,))
    assert warehouse.upsert_many([moved, raw_document(n=2)]) == [UpsertOutcome.UPDATED, UpsertOutcome.UNCHANGED]
    assert warehouse.get("jane-doe", LEGACY_URL) is None
    stored = warehouse.get("jane-doe", "file:articles/a.md")
    assert stored is not None
    # The same document, history kept: content unchanged, so still version 1, first seen when it was.
    assert (stored.version, stored.first_seen, stored.content) == (1, legacy.first_seen, legacy.content)
    assert warehouse.count(include_deleted=True) == 2
    assert [doc.source_url for doc in warehouse.changes_since(cursor).documents] == ["file:articles/a.md"]

    assert warehouse.upsert_many([moved]) == [UpsertOutcome.UNCHANGED]
    assert warehouse.count(include_deleted=True) == 2


def test_a_moved_document_with_new_content_is_a_new_version(warehouse: DocumentWarehouse):
    warehouse.upsert_many([raw_document(n=1, source_url=LEGACY_URL)])
    moved = raw_document(n=1, source_url="file:articles/a.md", previous_source_urls=(LEGACY_URL,), content="New.")
    assert warehouse.upsert_many([moved]) == [UpsertOutcome.UPDATED]
    stored = warehouse.get("jane-doe", "file:articles/a.md")
    assert stored is not None
    assert (stored.version, stored.content) == (2, "New.")
    assert warehouse.count(include_deleted=True) == 1


def test_a_move_left_half_done_is_finished(warehouse: DocumentWarehouse):
    """Both rows there (a MongoDB move interrupted between its two writes): the old one goes."""
    warehouse.upsert_many([raw_document(n=1, source_url=LEGACY_URL), raw_document(n=1, source_url="file:a.md")])
    moved = raw_document(n=1, source_url="file:a.md", previous_source_urls=(LEGACY_URL,))
    assert warehouse.upsert_many([moved]) == [UpsertOutcome.UNCHANGED]
    assert warehouse.get("jane-doe", LEGACY_URL) is None
    assert warehouse.count(include_deleted=True) == 1


def test_previous_urls_of_another_author_are_left_alone(warehouse: DocumentWarehouse):
    warehouse.upsert_many([raw_document(author_id="john-roe", n=1, source_url=LEGACY_URL)])
    warehouse.upsert_many([raw_document(n=1, source_url="file:articles/a.md", previous_source_urls=(LEGACY_URL,))])
    assert warehouse.get("john-roe", LEGACY_URL) is not None
    assert warehouse.count(include_deleted=True) == 2
