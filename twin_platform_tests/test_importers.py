"""The folder and handbook importers, through import_path into the real Postgres warehouse."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_platform.adapters.runtime import Runtime
from twin_platform.cli.main import app as cli
from twin_platform.collection.importers.folder import read_folder
from twin_platform.collection.ingest import ImportAborted, UnknownAuthorError, import_path
from twin_platform.collection.report import Rejection, Skipped
from twin_platform.collection.sources import sync_author_sources
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, DocumentDraft, Platform
from twin_platform.domain.ports import DocumentQuery
from twin_platform.settings import Settings
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
    write(tmp_path / "my notes/draft one.md", "Spaces in names.\n")
    items = drafts(tmp_path)
    post = items["posts/monday.md"]
    assert isinstance(post, DocumentDraft)
    # The path inside the import folder, never where the server keeps it; the absolute form is the
    # URL earlier versions stored, kept only so that the warehouse can move such rows.
    assert post.source_url == "file:posts/monday.md"
    assert post.previous_source_urls == (path.resolve().as_uri(),)
    spaced = items["my notes/draft one.md"]
    assert isinstance(spaced, DocumentDraft)
    assert spaced.source_url == "file:my%20notes/draft%20one.md"
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


# --- front matter that is odd or hostile ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-13-45", r"has an impossible date '2024-13-45' in its front matter \(line 3\): month must be in 1\.\.12"),
        ("2024-02-30", r"has an impossible date '2024-02-30' in its front matter \(line 3\): day is out of range"),
        ("0000-01-01", r"impossible date '0000-01-01' .*: year 0 is out of range"),
        ("2024-01-01 25:00:00", r"impossible date '2024-01-01 25:00:00' .*: hour must be in 0\.\.23"),
        ("2024-01-01T00:00:00+99:00", r"impossible date '2024-01-01T00:00:00\+99:00' .*: offset must be"),
        ("9999-12-31T23:59:59-05:00", r"date 9999-12-31T23:59:59-05:00 is out of range once converted to UTC"),
        ("'9999-12-31T23:59:59-05:00'", r"date '9999-12-31T23:59:59-05:00' is out of range once converted to UTC"),
        ("0001-01-01T00:00:00+05:00", r"is out of range once converted to UTC"),
        ("2024-1-5x", r"date '2024-1-5x' is not an ISO-8601 date"),
        ("[2024, 1, 1]", r"date \[2024, 1, 1\] is not a date \(expected YYYY-MM-DD"),
        ("{year: 2024}", r"date \{'year': 2024\} is not a date"),
        ("2024", r"date 2024 is not a date"),
        ("true", r"date True is not a date"),
        ("[" + ", ".join(["2024"] * 500) + "]", r"date \[2024, 2024, .{30,90}\.\.\. is not a date"),
        ("2024-03-10T10:00:00+02:00", datetime(2024, 3, 10, 8, tzinfo=UTC)),
        ("2024-03-10 10:00:00", datetime(2024, 3, 10, 10, tzinfo=UTC)),
        ("'2024-03-10T10:00:00Z'", datetime(2024, 3, 10, 10, tzinfo=UTC)),
        ("9999-12-31", datetime(9999, 12, 31, tzinfo=UTC)),
        ("0001-01-01T10:00:00+05:00", datetime(1, 1, 1, 5, tzinfo=UTC)),
    ],
)
def test_odd_front_matter_dates_are_accepted_in_utc_or_rejected_by_name(
    tmp_path: Path, value: str, expected: str | datetime
):
    corpus = tmp_path / "corpus"
    write(corpus / "odd.md", f"---\ntitle: Odd\ndate: {value}\n---\nBody.\n")
    write(corpus / "good.md", "# Good\n\nFine.\n")
    items = drafts(corpus)
    assert isinstance(items["good.md"], DocumentDraft)
    odd = items["odd.md"]
    if isinstance(expected, datetime):
        assert isinstance(odd, DocumentDraft), odd
        assert odd.published_at == expected
    else:
        assert isinstance(odd, Rejection), odd
        assert odd.reason.startswith("odd.md ")
        assert re.search(expected, odd.reason), odd.reason
        assert len(odd.reason) < 300  # a huge value is shown shortened


def test_other_unreadable_front_matter_values_are_rejected_by_name(tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "deep.md", "---\ntags: " + "[" * 5_000 + "]" * 5_000 + "\n---\nBody.\n")
    write(corpus / "bad-float.md", "---\ntitle: !!float nope\n---\nBody.\n")
    write(corpus / "python-tag.md", "---\ntitle: !!python/object/apply:os.system ['id']\n---\nBody.\n")
    items = drafts(corpus)
    assert isinstance(items["deep.md"], Rejection)
    assert "deep.md has front matter nested more than 50 levels deep (line 2)" in items["deep.md"].reason
    assert isinstance(items["bad-float.md"], Rejection)
    assert re.search(r"bad-float\.md has front matter that cannot be read: .*'nope'", items["bad-float.md"].reason)
    assert isinstance(items["python-tag.md"], Rejection)
    assert "python-tag.md has malformed YAML front matter" in items["python-tag.md"].reason


def test_twin_import_rejects_an_impossible_date_and_stores_the_rest(settings: Settings, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "posts/impossible.md", "---\ntitle: Impossible\ndate: 2024-13-45\n---\nBody.\n")
    write(corpus / "posts/fine.md", markdown("Fine", "Stored.", date="2024-12-01"))
    runner = CliRunner()
    assert runner.invoke(cli, ["authors", "add", "Jane Doe"], catch_exceptions=False).exit_code == 0
    result = runner.invoke(cli, ["import", str(corpus), "--author", "Jane Doe", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["inserted"], report["rejected"]) == (1, 1)
    [rejection] = report["rejections"]
    assert rejection["source"] == "posts/impossible.md"
    assert "posts/impossible.md has an impossible date '2024-13-45' in its front matter (line 3)" in rejection["reason"]


BILLION_LAUGHS = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
title: *i
tags: *i
---
Body.
"""


def test_yaml_anchors_and_aliases_are_refused_before_anything_is_expanded(tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "laughs.md", BILLION_LAUGHS)
    write(corpus / "alias-only.md", "---\ntitle: Plain\nsubtitle: *nothing\n---\nBody.\n")
    write(corpus / "good.md", "# Good\n\nFine.\n")
    items = drafts(corpus)
    laughs = items["laughs.md"]
    assert isinstance(laughs, Rejection)
    # Refused at the first anchor (line 2), before the alias on line 3 could refer to anything.
    assert laughs.reason == (
        "laughs.md has a YAML anchor (&a) in its front matter (line 2): "
        "anchors and aliases are not allowed in front matter"
    )
    alias = items["alias-only.md"]
    assert isinstance(alias, Rejection)
    assert alias.reason.startswith("alias-only.md has a YAML alias (*nothing) in its front matter (line 3)")
    assert isinstance(items["good.md"], DocumentDraft)


# --- nothing outside the import folder is read ------------------------------------------------------------

SECRET = "Top secret: the server's private notes."


def outside_files(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    write(outside / "secret.md", f"# Secret\n\n{SECRET}\n")
    write(outside / "articles/also-secret.md", f"# Also secret\n\n{SECRET}\n")
    return outside


def test_links_inside_an_import_folder_are_rejected_never_followed(runtime: Runtime, tmp_path: Path):
    outside = outside_files(tmp_path)
    corpus = tmp_path / "corpus"
    write(corpus / "posts/real.md", "# Real\n\nThe author's own words.\n")
    (corpus / "passwd.md").symlink_to("/etc/passwd")
    (corpus / "leak.md").symlink_to(outside / "secret.md")
    (corpus / "relative.md").symlink_to("../outside/secret.md")
    (corpus / "linked-folder").symlink_to(outside, target_is_directory=True)
    (corpus / "posts/loop").symlink_to(corpus, target_is_directory=True)
    (corpus / "dangling.md").symlink_to(corpus / "nowhere.md")
    (corpus / "notes").mkdir()
    (corpus / "notes/picture.png").symlink_to(outside / "secret.md")  # a link is refused whatever its name
    os.mkfifo(corpus / "pipe.md")  # would block a plain open() until someone writes to it
    runtime.authors.save(Author(full_name="Jane Doe"))
    # The root itself may be a link: it is resolved once, and nothing below it may leave it.
    shortcut = tmp_path / "shortcut"
    shortcut.symlink_to(corpus, target_is_directory=True)

    report = import_path(
        shortcut, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )

    reasons = {r.source: r.reason for r in report.rejected}
    links = ["dangling.md", "leak.md", "linked-folder", "notes/picture.png", "passwd.md", "posts/loop", "relative.md"]
    assert sorted(reasons) == sorted([*links, "pipe.md"])
    for name in links:
        assert reasons[name] == (
            f"{name} is a symbolic link: links are not followed, so that nothing outside the import folder is read"
        )
    assert reasons["pipe.md"] == "pipe.md is not a regular file or folder (a pipe, socket or device)"
    assert report.inserted == 1
    [stored] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", include_deleted=True))
    assert (stored.source_url, stored.content) == ("file:posts/real.md", "# Real\n\nThe author's own words.")


def test_folders_nested_too_deep_are_rejected_not_walked(tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "/".join(["d"] * 63) / "deepest-allowed.md", "# Deep\n\nStill read.\n")
    write(corpus / "/".join(["e"] * 70) / "too-deep.md", "# Deeper\n\nNot read.\n")
    items = drafts(corpus)
    assert isinstance(items["/".join(["d"] * 63) + "/deepest-allowed.md"], DocumentDraft)
    too_deep = "/".join(["e"] * 64)
    assert [(k, v) for k, v in items.items() if k.startswith("e/")] == [
        (too_deep, Rejection(too_deep, f"{too_deep} is nested more than 64 folders deep"))
    ]


def test_a_single_file_import_that_is_a_link_is_resolved_once(runtime: Runtime, tmp_path: Path):
    real = write(tmp_path / "corpus/note.md", "# Note\n\nOne file.\n")
    link = tmp_path / "note-link.md"
    link.symlink_to(real)
    runtime.authors.save(Author(full_name="Jane Doe"))
    report = import_path(
        link, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (report.inserted, report.rejected) == (1, [])
    assert runtime.warehouse.get("jane-doe", "file:note.md") is not None


def test_handbook_export_files_that_are_links_are_rejected(runtime: Runtime, tmp_path: Path):
    elsewhere = write_export(tmp_path / "someone-elses-export", [article(1, author_id="u2")])
    export = write_export(tmp_path / "export", [article(2)])
    (export / "ArticleDocument.json").unlink()
    (export / "ArticleDocument.json").symlink_to(elsewhere / "ArticleDocument.json")
    report = import_path(export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    reasons = {r.source: r.reason for r in report.rejected}
    assert reasons == {
        "ArticleDocument.json": "ArticleDocument.json is a symbolic link: links are not followed, "
        "so that nothing outside the import folder is read"
    }
    assert runtime.warehouse.get("john-roe", "https://jane.substack.com/p/article-1") is None
    assert report.inserted == 2  # the post and the repository

    users = tmp_path / "linked-users"
    users.mkdir()
    (users / "UserDocument.json").symlink_to(elsewhere / "UserDocument.json")
    report = import_path(users, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert [r.source for r in report.rejected] == ["UserDocument.json"]
    assert "is a symbolic link" in report.rejected[0].reason


# --- source URLs that do not reveal where the server keeps files ------------------------------------------


def test_files_without_a_url_are_stored_under_their_path_in_the_folder(runtime: Runtime, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "articles/x.md", "# X\n\nEx.\n")
    write(corpus / "posts/y.txt", "Why.\n")
    runtime.authors.save(Author(full_name="Jane Doe"))
    first = import_path(
        corpus, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert first.inserted == 2
    stored = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", include_deleted=True))
    assert sorted(doc.source_url for doc in stored) == ["file:articles/x.md", "file:posts/y.txt"]
    for doc in stored:
        assert str(tmp_path) not in doc.model_dump_json()
    again = import_path(
        corpus, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert runtime.warehouse.count(include_deleted=True) == 2


def store_as_before(runtime: Runtime, corpus: Path, names: list[str]) -> None:
    """What versions before relative URLs stored: the file's absolute file:/// path as its source URL."""
    legacy = []
    for item in read_folder(corpus, max_bytes=MAX):
        assert isinstance(item, DocumentDraft)
        if item.metadata["source_path"] in names:
            absolute = (corpus.resolve() / item.metadata["source_path"]).as_uri()
            legacy.append(item.model_copy(update={"source_url": absolute, "previous_source_urls": ()}))
    runtime.warehouse.upsert_many([draft.for_author("jane-doe") for draft in legacy])


def test_documents_stored_under_absolute_file_urls_are_moved_on_reimport(runtime: Runtime, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "articles/x.md", "# X\n\nEx.\n")
    write(corpus / "posts/y.txt", "Why.\n")
    write(corpus / "z.md", markdown("Z", "Zed.", canonical_url="https://jane.example.com/z"))
    runtime.authors.save(Author(full_name="Jane Doe"))
    store_as_before(runtime, corpus, ["articles/x.md", "posts/y.txt"])
    assert runtime.warehouse.count(include_deleted=True) == 2

    write(corpus / "posts/y.txt", "Why, revised.\n")
    report = import_path(
        corpus, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (report.inserted, report.updated, report.unchanged) == (1, 2, 0)
    stored = {doc.source_url: doc for doc in runtime.warehouse.find(DocumentQuery(include_deleted=True))}
    assert sorted(stored) == ["file:articles/x.md", "file:posts/y.txt", "https://jane.example.com/z"]
    assert (stored["file:articles/x.md"].version, stored["file:posts/y.txt"].version) == (1, 2)

    again = import_path(
        corpus, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert runtime.warehouse.count(include_deleted=True) == 3


def test_sync_over_documents_stored_under_absolute_file_urls_tombstones_nothing(runtime: Runtime, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write(corpus / "a.md", "# A\n\nAlpha.\n")
    author = runtime.authors.save(Author(full_name="Jane Doe", imports=(str(corpus),)))
    store_as_before(runtime, corpus, ["a.md"])
    report = sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    assert (report.inserted, report.updated, report.tombstoned) == (0, 1, 0)
    [doc] = runtime.warehouse.find(DocumentQuery(include_deleted=True))
    assert (doc.source_url, doc.is_tombstone) == ("file:a.md", False)


def test_sync_of_two_folders_holding_the_same_path_keeps_the_first(runtime: Runtime, tmp_path: Path):
    write(tmp_path / "blog/index.md", "# Blog\n\nThe blog's index.\n")
    write(tmp_path / "newsletter/index.md", "# Newsletter\n\nThe newsletter's index.\n")
    folders = (str(tmp_path / "blog"), str(tmp_path / "newsletter"))
    author = runtime.authors.save(Author(full_name="Jane Doe", imports=folders))
    for _ in range(2):
        report = sync_author_sources(author, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
        assert [r.source for r in report.rejected] == ["index.md"]
        assert "has the source URL file:index.md of index.md, imported earlier in this run" in report.rejected[0].reason
    [doc] = runtime.warehouse.find(DocumentQuery(include_deleted=True))
    assert (doc.title, doc.version) == ("Blog", 1)
