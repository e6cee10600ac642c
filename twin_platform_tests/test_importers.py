"""The folder and handbook importers, through import_path into the real Postgres warehouse."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin_platform.adapters.runtime import Runtime
from twin_platform.collection.importers.folder import read_folder
from twin_platform.collection.ingest import ImportAborted, UnknownAuthorError, import_path
from twin_platform.collection.report import Rejection, Skipped
from twin_platform.collection.sources import sync_author_sources
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, DocumentDraft, Platform
from twin_platform.domain.ports import DocumentQuery
from twin_platform_tests.factories import markdown, write

MAX = 5_000_000


def drafts(root: Path, max_bytes: int = MAX) -> dict[str, DocumentDraft | Rejection | Skipped]:
    return {
        item.metadata["source_path"] if isinstance(item, DocumentDraft) else item.source: item
        for item in read_folder(root, max_bytes=max_bytes)
    }


def test_markdown_front_matter_is_respected(tmp_path: Path):
    write(
        tmp_path / "articles/vector-search.md",
        markdown(
            "Vector search in Postgres",
            "# Ignored heading\n\nFirst paragraph.\n\nSecond paragraph.",
            date="2025-03-14",
            tags="[postgres, pgvector]",
            canonical_url="https://medium.com/@jane/vector-search-1a2b3c",
            language="en",
        ),
    )
    item = drafts(tmp_path)["articles/vector-search.md"]
    assert isinstance(item, DocumentDraft)
    assert item.title == "Vector search in Postgres"
    assert item.published_at == datetime(2025, 3, 14, tzinfo=UTC)
    assert item.metadata["tags"] == ["postgres", "pgvector"]
    assert item.source_url == "https://medium.com/@jane/vector-search-1a2b3c"
    assert item.platform is Platform.MEDIUM
    assert item.category is Category.ARTICLE
    assert item.language == "en"
    assert item.content.startswith("# Ignored heading\n\nFirst paragraph.\n\nSecond paragraph.")


def test_defaults_file_url_folder_category_heading_title(tmp_path: Path):
    path = write(tmp_path / "posts/monday.md", "# Monday thoughts\n\nShip small.\n")
    write(tmp_path / "notes.txt", "Plain text note.\nSecond line.\n")
    items = drafts(tmp_path)
    post = items["posts/monday.md"]
    assert isinstance(post, DocumentDraft)
    assert post.source_url == path.resolve().as_uri()
    assert post.platform is Platform.LOCAL
    assert post.category is Category.POST
    assert post.title == "Monday thoughts"
    note = items["notes.txt"]
    assert isinstance(note, DocumentDraft)
    assert note.title == "Notes"
    assert note.content == "Plain text note.\nSecond line."


def test_html_title_canonical_date_and_paragraphs(tmp_path: Path):
    write(
        tmp_path / "page.html",
        """<!doctype html><html lang="en"><head><title>Chunking well</title>
<link rel="canonical" href="https://jane.example.com/chunking">
<meta property="article:published_time" content="2024-05-01T08:00:00Z">
<script>var tracking = 1;</script><style>p {}</style></head>
<body><nav>Home | About</nav><article><h1>Chunking well</h1><p>First <b>bold</b> point.</p>
<p>Second point.</p></article></body></html>""",
    )
    item = drafts(tmp_path)["page.html"]
    assert isinstance(item, DocumentDraft)
    assert item.title == "Chunking well"
    assert item.source_url == "https://jane.example.com/chunking"
    assert item.published_at == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert item.language == "en"
    assert "First bold point.\n\nSecond point." in item.content
    assert "tracking" not in item.content
    assert "Home | About" not in item.content  # only the <article> is read


def test_html_in_a_declared_legacy_charset_is_decoded(tmp_path: Path):
    html = (
        '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
        "<body><p>Cr\xe8me br\xfbl\xe9e.</p></body></html>"
    )
    write(tmp_path / "latin1.html", html.encode("latin-1"))
    item = drafts(tmp_path)["latin1.html"]
    assert isinstance(item, DocumentDraft)
    assert item.title == "Café"
    assert "Crème brûlée." in item.content


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("bad-utf8.md", b"# Title\n\ncaf\xe9 au lait\n", r"not valid UTF-8: byte 0xe9 at offset 12"),
        ("empty.md", b"   \n\n", r"is empty"),
        ("only-front.md", b"---\ntitle: x\n---\n\n", r"is empty \(no text after front matter\)"),
        ("truncated.md", b"---\ntitle: x\ndate: 2025-01-01\n", r"never closed with '---' \(truncated file\?\)"),
        ("bad-yaml.md", b"---\ntitle: [unclosed\n---\nbody\n", r"malformed YAML front matter"),
        ("list-front.md", b"---\n- a\n- b\n---\nbody\n", r"not a mapping"),
        ("bad-date.md", b"---\ndate: someday\n---\nbody\n", r"date 'someday' is not an ISO-8601 date"),
        ("bad-category.md", b"---\ncategory: tweet\n---\nbody\n", r"unknown category 'tweet'"),
        ("bad-url.md", b"---\ncanonical_url: ftp://x/y\n---\nbody\n", r"not an http\(s\) URL"),
        ("binary.txt", b"abc\x00def", r"NUL bytes"),
    ],
)
def test_bad_files_are_rejected_with_their_reason(tmp_path: Path, name: str, data: bytes, reason: str):
    write(tmp_path / name, data)
    write(tmp_path / "good.md", "# Good\n\nFine.\n")
    items = drafts(tmp_path)
    rejection = items[name]
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith(name)
    assert re.search(reason, rejection.reason), rejection.reason
    assert isinstance(items["good.md"], DocumentDraft)


def test_size_cap_and_skipped_types(tmp_path: Path):
    write(tmp_path / "big.md", "# Big\n\n" + "x" * 2_000)
    write(tmp_path / "diagram.png", b"\x89PNG....")
    write(tmp_path / ".hidden/secret.md", "# Hidden\n\nNot imported.")
    items = drafts(tmp_path, max_bytes=1_000)
    assert isinstance(items["big.md"], Rejection)
    assert "over the 1,000-byte import limit" in items["big.md"].reason
    assert isinstance(items["diagram.png"], Skipped)
    assert ".hidden/secret.md" not in items


def test_folder_import_counts_and_is_idempotent(runtime: Runtime, tmp_path: Path):
    runtime.authors.save(Author(full_name="Jane Doe", aliases=("J. Doe",)))
    write(tmp_path / "a.md", markdown("A", "Alpha.", canonical_url="https://jane.example.com/a"))
    write(tmp_path / "b.md", markdown("B", "Beta.", canonical_url="https://jane.example.com/b"))
    write(tmp_path / "c.md", b"\xff\xfe broken")
    first = import_path(
        tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, author_name="j. doe", max_bytes=MAX
    )
    assert (first.inserted, first.updated, first.unchanged, len(first.rejected)) == (2, 0, 0, 1)
    second = import_path(
        tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)

    write(tmp_path / "a.md", markdown("A", "Alpha, revised.", canonical_url="https://jane.example.com/a"))
    third = import_path(
        tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, author_name="jane-doe", max_bytes=MAX
    )
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    stored = runtime.warehouse.get("jane-doe", "https://jane.example.com/a")
    assert stored is not None
    assert (stored.version, stored.content) == (2, "Alpha, revised.")
    assert runtime.warehouse.count(include_deleted=True) == 2


def test_duplicate_source_urls_in_one_import(runtime: Runtime, tmp_path: Path):
    runtime.authors.save(Author(full_name="Jane Doe"))
    write(tmp_path / "one.md", markdown("One", "First copy.", canonical_url="https://jane.example.com/same"))
    write(tmp_path / "two.md", markdown("Two", "Second copy.", canonical_url="https://jane.example.com/same"))
    report = import_path(
        tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert report.inserted == 1
    assert [r.source for r in report.rejected] == ["two.md"]
    assert "imported earlier in this run (duplicate)" in report.rejected[0].reason
    stored = runtime.warehouse.get("jane-doe", "https://jane.example.com/same")
    assert stored is not None
    assert stored.content == "First copy."


def test_import_that_cannot_start_stores_nothing(runtime: Runtime, tmp_path: Path):
    write(tmp_path / "a.md", "# A\n\nAlpha.")
    with pytest.raises(UnknownAuthorError, match="'Nobody' is not registered"):
        import_path(tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Nobody", max_bytes=MAX)
    with pytest.raises(UnknownAuthorError, match="--author"):
        import_path(tmp_path, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    with pytest.raises(ImportAborted, match="does not exist"):
        import_path(tmp_path / "missing", warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert runtime.warehouse.count(include_deleted=True) == 0


def test_sync_tombstones_deleted_files_but_keeps_rejected_ones(runtime: Runtime, tmp_path: Path):
    folder = tmp_path / "corpus"
    write(folder / "keep.md", "# Keep\n\nStays.")
    write(folder / "gone.md", "# Gone\n\nWill be deleted.")
    write(folder / "flaky.md", "# Flaky\n\nWill be half-written.")
    author = runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    first = sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert first.inserted == 3

    (folder / "gone.md").unlink()
    write(folder / "flaky.md", "---\ntitle: half")
    second = sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert (second.unchanged, second.tombstoned, len(second.rejected)) == (1, 1, 1)
    live = {doc.metadata["source_path"] for doc in runtime.warehouse.find(DocumentQuery(author_id="jane-doe"))}
    assert live == {"keep.md", "flaky.md"}


def test_sync_with_a_missing_source_tombstones_nothing(runtime: Runtime, tmp_path: Path):
    folder = tmp_path / "corpus"
    write(folder / "a.md", "# A\n\nAlpha.")
    author = runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    (folder / "a.md").unlink()
    folder.rmdir()
    report = sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert report.tombstoned == 0
    assert "does not exist" in report.rejected[0].reason
    assert runtime.warehouse.count("jane-doe") == 1


# --- the LLM Engineer's Handbook export ------------------------------------------------------------------


def write_export(folder: Path, articles: object, users: object | None = None) -> Path:
    users = (
        users
        if users is not None
        else [
            {"_id": "u1", "first_name": "Jane", "last_name": "Doe"},
            {"_id": "u2", "first_name": "John", "last_name": "Roe"},
        ]
    )
    write(folder / "UserDocument.json", json.dumps(users))
    write(folder / "ArticleDocument.json", json.dumps(articles))
    write(
        folder / "PostDocument.json",
        json.dumps(
            [
                {
                    "_id": "p1",
                    "author_id": "u2",
                    "platform": "linkedin",
                    "content": {"Post_0": "Short post text."},
                    "image": None,
                },
            ]
        ),
    )
    write(
        folder / "RepositoryDocument.json",
        json.dumps(
            [
                {
                    "_id": "r1",
                    "author_id": "u1",
                    "platform": "github",
                    "name": "tool",
                    "link": "https://github.com/jane/tool",
                    "content": {"README.md": "# tool\n\nDoes things.", "main.py": "print('hi')\n"},
                },
            ]
        ),
    )
    return folder


def article(n: int, author_id: str = "u1", **overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "_id": f"a{n}",
        "author_id": author_id,
        "author_full_name": "Jane Doe",
        "platform": "jane.substack.com",
        "link": f"https://jane.substack.com/p/article-{n}",
        "content": {"Title": f"Article {n}", "Subtitle": "sub", "Content": f"Body of article {n}.", "language": "en"},
    }
    record.update(overrides)
    return record


def test_handbook_export_registers_authors_and_maps_every_category(runtime: Runtime, tmp_path: Path):
    export = write_export(tmp_path / "export", [article(1), article(2, author_id="u2")])
    report = import_path(export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert (report.inserted, len(report.rejected)) == (4, 0)
    assert {a.id for a in runtime.authors.list()} == {"jane-doe", "john-roe"}
    stored = runtime.warehouse.get("jane-doe", "https://jane.substack.com/p/article-1")
    assert stored is not None
    assert (stored.platform, stored.category, stored.title, stored.language) == (
        Platform.SUBSTACK,
        Category.ARTICLE,
        "Article 1",
        "en",
    )
    assert stored.metadata["subtitle"] == "sub"
    post = runtime.warehouse.find(DocumentQuery(author_id="john-roe", category=Category.POST))
    assert [(p.source_url, p.content) for p in post] == [("urn:llm-engineers-handbook:post:p1", "Short post text.")]
    repo = runtime.warehouse.get("jane-doe", "https://github.com/jane/tool")
    assert repo is not None
    assert repo.category is Category.REPOSITORY
    assert repo.title == "tool"
    assert "### main.py" in repo.content
    assert repo.metadata["files"] == ["README.md", "main.py"]


def test_handbook_export_bad_records_are_rejected_the_rest_stored(runtime: Runtime, tmp_path: Path):
    export = write_export(
        tmp_path / "export",
        [
            article(1),
            article(2, author_id="ghost", author_full_name="Ghost Writer"),
            "not a mapping",
            article(3, content={"Title": "Empty", "Content": "   "}),
            article(4, link=None, _id=None),
            article(5, link="https://jane.substack.com/p/article-1"),
        ],
    )
    report = import_path(export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    reasons = {r.source: r.reason for r in report.rejected}
    assert "who is not in UserDocument.json" in reasons["ArticleDocument.json[1]"]
    assert "unknown shape" in reasons["ArticleDocument.json[2]"]
    assert "content is empty" in reasons["ArticleDocument.json[3]"]
    assert "neither a link nor an _id" in reasons["ArticleDocument.json[4]"]
    assert "duplicate" in reasons["a5"]
    assert report.inserted == 3  # article 1, the post and the repository


def test_handbook_export_of_unknown_shape(runtime: Runtime, tmp_path: Path):
    export = write_export(tmp_path / "export", {"articles": []}, users=[{"id": 1}])
    write(export / "PostDocument.json", "[{truncated")
    report = import_path(export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    reasons = [r.reason for r in report.rejected]
    assert any("UserDocument.json[0] has an unknown shape" in r for r in reasons)
    assert any("ArticleDocument.json has an unknown shape: expected a JSON list" in r for r in reasons)
    assert any("PostDocument.json is not valid JSON" in r for r in reasons)
    assert runtime.warehouse.count(include_deleted=True) == 0


def test_handbook_export_limited_to_one_author(runtime: Runtime, tmp_path: Path):
    runtime.authors.save(Author(full_name="John Roe"))
    export = write_export(tmp_path / "export", [article(1), article(2, author_id="u2")])
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="John Roe", max_bytes=MAX
    )
    assert report.inserted == 2  # john's article and post
    assert {a.id for a in runtime.authors.list()} == {"john-roe"}


def test_the_books_real_export(runtime: Runtime, handbook_export: Path):
    report = import_path(handbook_export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert (report.inserted, len(report.rejected)) == (76, 0)
    assert runtime.warehouse.count("paul-iusztin") == 50
    assert runtime.warehouse.count("maxime-labonne") == 26
    again = import_path(handbook_export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 76)
    assert runtime.warehouse.count(include_deleted=True) == 76
