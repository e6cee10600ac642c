from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from twin_platform.domain.authors import Author, slugify
from twin_platform.domain.documents import (
    Category,
    DocumentDraft,
    Platform,
    UpsertOutcome,
    document_id,
    plan_upsert,
    platform_for_url,
)
from twin_platform_tests.factories import raw_document

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_slugify_handles_accents_and_punctuation():
    assert slugify("Zoë Q. Fairweather") == "zoe-q-fairweather"
    with pytest.raises(ValueError, match="no letters or digits"):
        slugify("!!!")


def test_author_id_derives_from_name_and_links_must_be_http():
    author = Author(full_name="  Jane   Doe ", aliases=("J. Doe", "J. Doe", " "))
    assert author.id == "jane-doe"
    assert author.full_name == "Jane Doe"
    assert author.aliases == ("J. Doe",)
    assert {"jane-doe", "jane doe", "j. doe"} <= author.names()
    with pytest.raises(ValidationError, match="must be an http"):
        Author(full_name="Jane", links={Platform.MEDIUM: ("ftp://x",)})
    with pytest.raises(ValidationError, match="lowercase slug"):
        Author(id="Jane Doe", full_name="Jane Doe")


def test_with_additions_merges_without_duplicates():
    author = Author(full_name="Jane Doe", links={Platform.MEDIUM: ("https://medium.com/@jane",)}, imports=("/a",))
    merged = author.with_additions(
        links={Platform.MEDIUM: ("https://medium.com/@jane", "https://medium.com/@jane2")}, imports=("/a", "/b")
    )
    assert merged.links[Platform.MEDIUM] == ("https://medium.com/@jane", "https://medium.com/@jane2")
    assert merged.imports == ("/a", "/b")


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://medium.com/@jane/post-1", Platform.MEDIUM),
        ("https://jane.medium.com/post-1", Platform.MEDIUM),
        ("https://jane.substack.com/p/x", Platform.SUBSTACK),
        ("https://www.linkedin.com/posts/x", Platform.LINKEDIN),
        ("https://github.com/jane/repo", Platform.GITHUB),
        ("https://jane.github.io/blog", Platform.WEB),
        ("file:///tmp/a.md", Platform.LOCAL),
    ],
)
def test_platform_for_url(url, platform):
    assert platform_for_url(url) is platform


def test_draft_rejects_empty_content_and_normalises_dates():
    with pytest.raises(ValidationError, match="content is empty"):
        DocumentDraft(category=Category.POST, platform=Platform.WEB, source_url="https://x", content="  \n")
    draft = DocumentDraft(
        category=Category.POST,
        platform=Platform.WEB,
        source_url="https://x",
        content="hi",
        published_at=datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    )
    assert draft.published_at == datetime(2025, 1, 1, 10, tzinfo=UTC)


def test_document_id_is_stable_per_author_and_url():
    assert document_id("a", "https://x") == document_id("a", "https://x")
    assert document_id("a", "https://x") != document_id("b", "https://x")


def test_content_hash_covers_content_title_and_metadata():
    base = raw_document()
    assert base.content_hash == raw_document().content_hash
    assert base.content_hash != raw_document(content="other").content_hash
    assert base.content_hash != raw_document(title="other").content_hash
    assert base.content_hash != raw_document(metadata={"tags": ["x"]}).content_hash


def test_plan_upsert_versions():
    outcome, first = plan_upsert(None, raw_document(), NOW)
    assert outcome is UpsertOutcome.INSERTED
    assert (first.version, first.first_seen, first.updated_at) == (1, NOW, NOW)

    later = NOW + timedelta(days=1)
    outcome, same = plan_upsert(first, raw_document(), later)
    assert outcome is UpsertOutcome.UNCHANGED
    assert (same.version, same.updated_at, same.last_seen) == (1, NOW, later)

    outcome, changed = plan_upsert(first, raw_document(content="new text"), later)
    assert outcome is UpsertOutcome.UPDATED
    assert (changed.version, changed.first_seen, changed.updated_at) == (2, NOW, later)

    tombstone = first.model_copy(update={"deleted_at": later})
    outcome, revived = plan_upsert(tombstone, raw_document(), later)
    assert outcome is UpsertOutcome.UPDATED
    assert revived.version == 2
    assert revived.deleted_at is None
