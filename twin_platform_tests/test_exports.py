"""The platforms' data-export importers, on export zips (and folders) made by the tests."""

from __future__ import annotations

import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin_platform.adapters.runtime import Runtime
from twin_platform.collection.ingest import ImportAborted, UnknownAuthorError, import_path
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.ports import DocumentQuery

MAX = 5_000_000


def make_zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def medium_post(title: str, slug: str, body: str, when: str = "2024-01-15T10:00:00.000Z") -> str:
    return f"""<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{title}</title></head><body><article class="h-entry"><header><h1 class="p-name">{title}</h1></header>
<section data-field="subtitle" class="p-summary">A subtitle for {title}</section>
<section data-field="body" class="e-content"><section name="a1" class="section"><div class="section-inner">
<h3 class="graf graf--h3">{title}</h3><p class="graf graf--p">{body}</p><p class="graf graf--p">Second paragraph.</p>
</div></section></section><footer><p>By <a href="https://medium.com/@jane" class="p-author h-card">Jane Doe</a> on
<a href="https://medium.com/p/{slug}"><time class="dt-published" datetime="{when}">January 15, 2024</time></a>.</p>
<p><a href="https://medium.com/@jane/{slug}" class="p-canonical">Canonical link</a></p>
<p>Exported from <a href="https://medium.com">Medium</a> on November 1, 2026.</p></footer></article></body></html>"""


@pytest.fixture
def jane(runtime: Runtime) -> Author:
    return runtime.authors.save(Author(full_name="Jane Doe", links={Platform.SUBSTACK: ("https://jane.substack.com",)}))


def test_medium_export_zip(runtime: Runtime, jane: Author, tmp_path: Path):
    export = make_zip(
        tmp_path / "medium-export.zip",
        {
            "README.html": "<html><body>Your Medium export</body></html>",
            "posts/2024-01-15_Vector-search-abc123.html": medium_post(
                "Vector search", "vector-search-abc123", "HNSW is a graph."
            ),
            "posts/2024-02-01_Chunking-def456.html": medium_post(
                "Chunking", "chunking-def456", "Chunk by meaning.", "2024-02-01T08:30:00.000Z"
            ),
            "posts/draft_Unfinished-0a0a0a.html": medium_post("Unfinished", "unfinished-0a0a0a", "Half a thought."),
            "profile/profile.html": "<html><body>profile</body></html>",
        },
    )
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (report.inserted, report.skipped, len(report.rejected)) == (2, 1, 0)
    doc = runtime.warehouse.get("jane-doe", "https://medium.com/@jane/vector-search-abc123")
    assert doc is not None
    assert (doc.title, doc.platform, doc.category) == ("Vector search", Platform.MEDIUM, Category.ARTICLE)
    assert doc.published_at == datetime(2024, 1, 15, 10, tzinfo=UTC)
    assert doc.metadata["subtitle"] == "A subtitle for Vector search"
    assert "HNSW is a graph.\n\nSecond paragraph." in doc.content
    assert "Exported from" not in doc.content
    again = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (again.inserted, again.unchanged) == (0, 2)


def test_substack_export_zip_uses_the_authors_publication_url(runtime: Runtime, jane: Author, tmp_path: Path):
    csv_text = (
        "post_id,post_date,is_published,email_sent_at,inbox_sent_at,type,audience,title,subtitle,podcast_url\n"
        '101.hybrid-search,2025-03-01T07:00:00.000Z,true,,,newsletter,everyone,Hybrid search,"RRF, simply",\n'
        "102.draft-post,,false,,,newsletter,everyone,Draft,,\n"
        "103.missing-body,2025-03-05T07:00:00.000Z,true,,,newsletter,everyone,Missing,,\n"
        "104.bad-date,yesterday,true,,,newsletter,everyone,Bad date,,\n"
    )
    export = make_zip(
        tmp_path / "substack.zip",
        {
            "posts.csv": csv_text,
            "posts/101.hybrid-search.html": "<p>Full-text and vectors, fused.</p><p>Second paragraph.</p>",
            "posts/104.bad-date.html": "<p>Body.</p>",
            "posts/102.draft-post.html": "<p>Draft body.</p>",
        },
    )
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="jane-doe", max_bytes=MAX
    )
    assert (report.inserted, report.skipped) == (1, 1)
    reasons = " | ".join(r.reason for r in report.rejected)
    assert "posts/103.missing-body.html" in reasons
    assert "post_date 'yesterday' is not an ISO-8601 date" in reasons
    doc = runtime.warehouse.get("jane-doe", "https://jane.substack.com/p/hybrid-search")
    assert doc is not None
    assert (doc.title, doc.metadata["subtitle"], doc.platform) == ("Hybrid search", "RRF, simply", Platform.SUBSTACK)
    assert doc.content == "Full-text and vectors, fused.\n\nSecond paragraph."


def test_linkedin_export_folder(runtime: Runtime, jane: Author, tmp_path: Path):
    export = tmp_path / "Basic_LinkedInDataExport"
    (export / "Articles" / "Articles").mkdir(parents=True)
    (export / "Shares.csv").write_text(
        "Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n"
        '2025-04-01 12:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A1,"Postgres is underrated.\n'
        '\nHere is ""why"".",,,MEMBER_NETWORK\n'
        "2025-04-02 09:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A2,,https://example.com,,PUBLIC\n",
        encoding="utf-8",
    )
    (export / "Articles" / "Articles" / "2024-06-01 10:00:00.0-Evals first.html").write_text(
        "<html><head><title>Evals first</title></head><body><h1>Evals first</h1>"
        '<p class="created">Created on 2024-06-01 10:00</p><p class="published">Published on 2024-06-02 08:00</p>'
        "<div><p>Build the eval set before the prompt.</p><p>Then iterate.</p></div></body></html>",
        encoding="utf-8",
    )
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    assert (report.inserted, report.skipped, len(report.rejected)) == (2, 1, 0)
    [post] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", category=Category.POST))
    assert post.content == 'Postgres is underrated.\n\nHere is "why".'
    assert post.published_at == datetime(2025, 4, 1, 12, tzinfo=UTC)
    assert post.platform is Platform.LINKEDIN
    [article] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", category=Category.ARTICLE))
    assert article.title == "Evals first"
    assert article.published_at == datetime(2024, 6, 2, 8, tzinfo=UTC)
    assert article.content == "Build the eval set before the prompt.\n\nThen iterate."


def test_exports_need_an_author_and_unknown_zips_are_refused(runtime: Runtime, tmp_path: Path):
    export = make_zip(tmp_path / "substack.zip", {"posts.csv": "post_id\n"})
    with pytest.raises(UnknownAuthorError, match="substack export"):
        import_path(export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=MAX)
    runtime.authors.save(Author(full_name="Jane Doe"))
    other = make_zip(tmp_path / "photos.zip", {"img/1.jpg": b"\xff\xd8"})
    with pytest.raises(ImportAborted, match="not a Medium, Substack or LinkedIn export"):
        import_path(other, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX)


def test_oversized_member_is_rejected_not_unpacked(runtime: Runtime, jane: Author, tmp_path: Path):
    export = make_zip(
        tmp_path / "medium.zip",
        {
            "posts/2024-01-15_Big-abc.html": medium_post("Big", "big-abc", "x" * 50_000),
            "posts/2024-01-16_Small-def.html": medium_post("Small", "small-def", "Short."),
        },
    )
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=20_000
    )
    assert report.inserted == 1
    assert "over the 20,000-byte import limit" in report.rejected[0].reason


CLIMBING = (
    "../posts/2024-01-17_Up-ghi.html",
    "/posts/2024-01-18_Abs-jkl.html",
    "posts/../../x/posts/y.html",
    "C:/posts/2024-01-19_Drive-mno.html",
    "posts\\..\\..\\posts/2024-01-20_Back-pqr.html",
)


def test_zip_members_that_are_links_or_climb_out_are_rejected(runtime: Runtime, jane: Author, tmp_path: Path):
    export = tmp_path / "medium.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr("posts/2024-01-15_Real-abc.html", medium_post("Real", "real-abc", "The author's words."))
        link = zipfile.ZipInfo("posts/2024-01-16_Link-def.html")
        link.create_system = 3  # unix: the high 16 bits of external_attr are the file mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        for name in CLIMBING:
            archive.writestr(name, medium_post("Injected", "injected", "Not from this export."))
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    reasons = {r.source: r.reason for r in report.rejected}
    assert reasons["posts/2024-01-16_Link-def.html"] == (
        "posts/2024-01-16_Link-def.html is a symbolic link in the archive: links are not followed"
    )
    unsafe = "has an unsafe path (absolute, or climbing out with '..'): archive members must stay inside the export"
    for name in CLIMBING:
        assert reasons[name] == f"{name} {unsafe}"
    assert len(reasons) == 1 + len(CLIMBING)
    assert report.inserted == 1
    [stored] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", include_deleted=True))
    assert stored.title == "Real"


def test_folder_exports_do_not_follow_links(runtime: Runtime, jane: Author, tmp_path: Path):
    outside = tmp_path / "outside"
    (outside / "Articles").mkdir(parents=True)
    (outside / "Shares.csv").write_text(
        "Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n"
        "2025-04-01 12:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A9,Not the author's,,,PUBLIC\n",
        encoding="utf-8",
    )
    (outside / "Articles" / "private.html").write_text("<h1>Private</h1><p>Not the author's.</p>", encoding="utf-8")
    export = tmp_path / "Basic_LinkedInDataExport"
    articles = export / "Articles" / "Articles"
    articles.mkdir(parents=True)
    (export / "Shares.csv").symlink_to(outside / "Shares.csv")
    (articles / "private.html").symlink_to(outside / "Articles" / "private.html")
    (articles / "more").symlink_to(outside / "Articles", target_is_directory=True)
    (articles / "own.html").write_text("<h1>Own</h1><p>The author's article.</p>", encoding="utf-8")

    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    link = "is a symbolic link: links are not followed, so that nothing outside the import folder is read"
    refused = ["Articles/Articles/more", "Articles/Articles/private.html", "Shares.csv"]
    assert {r.source: r.reason for r in report.rejected} == {name: f"{name} {link}" for name in refused}
    [stored] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", include_deleted=True))
    assert (stored.metadata["importer"], stored.title, stored.content) == (
        "linkedin-export",
        "Own",
        "The author's article.",
    )


def test_linkedin_dates_that_cannot_exist_reject_only_their_row(runtime: Runtime, jane: Author, tmp_path: Path):
    export = make_zip(
        tmp_path / "linkedin.zip",
        {
            "Shares.csv": "Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n"
            "2025-13-45 12:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A1,Impossible day.,,,PUBLIC\n"
            "2025-04-02 09:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A2,A fine day.,,,PUBLIC\n",
            "Articles/Articles/Feb 30.html": "<h1>Feb 30</h1><p class='published'>Published on 2024-02-30 08:00</p>"
            "<p>Body.</p>",
        },
    )
    report = import_path(
        export, warehouse=runtime.warehouse, authors=runtime.authors, author_name="Jane Doe", max_bytes=MAX
    )
    reasons = {r.source: r.reason for r in report.rejected}
    assert reasons == {
        "Shares.csv:2": "Shares.csv:2 has a date '2025-13-45 12:00:00' that cannot exist: month must be in 1..12",
        "Articles/Articles/Feb 30.html": "Articles/Articles/Feb 30.html has a date 'Published on 2024-02-30 08:00' "
        "that cannot exist: day is out of range for month",
    }
    [stored] = runtime.warehouse.find(DocumentQuery(author_id="jane-doe", include_deleted=True))
    assert stored.content == "A fine day."
