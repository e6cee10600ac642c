"""Each platform crawler against fixture pages served on 127.0.0.1, and the GitHub crawler on a local repo."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin_platform.adapters.git import shallow_clone
from twin_platform.adapters.http.fetcher import PoliteFetcher
from twin_platform.adapters.http.safety import UrlGuard
from twin_platform.collection.crawlers.dispatch import CrawlEnvironment
from twin_platform.collection.crawlers.github import RepositoryLimits, validate_repository_url
from twin_platform.collection.crawlers.medium import medium_feed_url
from twin_platform.domain.crawling import BlockedURL, FetchError, LoginWall
from twin_platform.domain.documents import Category, Platform
from twin_platform_tests.web.pages import (
    AUTHWALL_PAGE,
    PARAGRAPHS,
    article_page,
    install_substack,
    linkedin_post_page,
    medium_feed,
    rss_feed,
)
from twin_platform_tests.web.server import Page, Site


def no_clone(url: str, dest: Path) -> None:
    raise AssertionError("no clone expected")


@pytest.fixture
def env(fetcher: PoliteFetcher) -> CrawlEnvironment:
    return CrawlEnvironment(fetcher=fetcher, validators=None, clone=no_clone, repository_limits=RepositoryLimits())


def test_medium_profile_through_its_rss_feed(env: CrawlEnvironment, site: Site):
    site.route("/feed/@jane", Page(medium_feed(site), content_type="text/xml; charset=UTF-8"))
    result = env.crawl(site.url("/@jane"), Platform.MEDIUM)
    assert [d.title for d in result.documents] == ["Medium post 1", "Medium post 2", "Medium post 3"]
    first = result.documents[0]
    assert first.platform is Platform.MEDIUM
    assert first.category is Category.ARTICLE
    assert first.published_at == datetime(2025, 1, 1, 9, tzinfo=UTC)
    assert first.source_url.startswith(site.url("/@jane/medium-post-1"))
    assert f"{PARAGRAPHS[0]} (post 1)\n\n{PARAGRAPHS[1]} (post 1)" in first.content
    assert first.metadata["tags"] == ["postgres", "rag"]


@pytest.mark.parametrize(
    ("url", "feed"),
    [
        ("https://medium.com/@jane", "https://medium.com/feed/@jane"),
        ("https://jane.medium.com/", "https://jane.medium.com/feed"),
        ("https://medium.com/feed/@jane", "https://medium.com/feed/@jane"),
        ("https://medium.com/@jane/my-post-abc123", None),
    ],
)
def test_medium_feed_urls(url: str, feed: str | None):
    assert medium_feed_url(url) == feed


def test_medium_single_article_page(env: CrawlEnvironment, site: Site):
    site.route("/@jane/one-post-abc123", Page(article_page("One post", canonical=site.url("/@jane/one-post-abc123"))))
    [doc] = env.crawl(site.url("/@jane/one-post-abc123"), Platform.MEDIUM).documents
    assert (doc.title, doc.platform) == ("One post", Platform.MEDIUM)
    assert PARAGRAPHS[1] in doc.content
    assert "All rights reserved" not in doc.content


def test_substack_archive_is_paginated_and_skips_paid_and_podcasts(env: CrawlEnvironment, site: Site):
    install_substack(site, posts=15)
    result = env.crawl(site.url("/"), Platform.SUBSTACK)  # a publication on its own domain
    titles = sorted(d.title for d in result.documents)
    assert titles == sorted(f"Substack issue {n}" for n in range(1, 16))
    archive_calls = [h.path for h in site.hits if h.path.startswith("/api/v1/archive")]
    assert len(archive_calls) == 2  # 17 entries, 12 per page
    assert any("paid subscribers" in s for s in result.skipped)
    assert any("podcast" in s for s in result.skipped)
    doc = next(d for d in result.documents if d.title == "Substack issue 2")
    assert doc.published_at == datetime(2025, 3, 2, 7, tzinfo=UTC)
    assert doc.metadata["subtitle"] == "Subtitle 2"
    assert doc.content.startswith(f"{PARAGRAPHS[0]} (issue 2)")
    assert "Subscribe for free" not in doc.content


def test_substack_single_post_and_rss_feed(env: CrawlEnvironment, site: Site):
    install_substack(site, posts=2)
    [post] = env.crawl(site.url("/p/issue-1"), Platform.SUBSTACK).documents
    assert post.title == "Substack issue 1"
    site.route("/feed", Page(rss_feed(site), content_type="application/rss+xml"))
    feed = env.crawl(site.url("/feed"), Platform.SUBSTACK)
    assert [d.title for d in feed.documents] == ["Feed post 1", "Feed post 2"]
    assert feed.documents[0].language == "en"


def test_linkedin_public_post(env: CrawlEnvironment, site: Site):
    text = "Postgres is still the most underrated vector database.\n\nHere is why."
    site.route("/posts/jane-doe_rag-activity-7100000000000000001", Page(linkedin_post_page(site, text)))
    [doc] = env.crawl(site.url("/posts/jane-doe_rag-activity-7100000000000000001"), Platform.LINKEDIN).documents
    assert (doc.category, doc.content, doc.metadata["byline"]) == (Category.POST, text, "Jane Doe")
    assert doc.published_at == datetime(2025, 4, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("path", ["/posts/private-activity-1", "/pulse/members-only", "/in/jane-doe"])
def test_linkedin_login_wall_points_to_the_export_importer(env: CrawlEnvironment, site: Site, path: str):
    site.route("/posts/private-activity-1", Page("", status=302, headers={"Location": "/authwall?trk=x"}))
    site.route("/authwall", Page(AUTHWALL_PAGE))
    site.route("/pulse/members-only", Page(AUTHWALL_PAGE))
    with pytest.raises(LoginWall, match=r"twin import .* --author NAME"):
        env.crawl(site.url(path), Platform.LINKEDIN)


def test_linkedin_999_is_a_login_wall(env: CrawlEnvironment, site: Site):
    site.route("/posts/blocked", Page("", status=999, etag=False))
    with pytest.raises(LoginWall, match="HTTP 999"):
        env.crawl(site.url("/posts/blocked"), Platform.LINKEDIN)


def test_any_article_url(env: CrawlEnvironment, site: Site):
    site.route("/blog/post.html", Page(article_page("Hybrid search", canonical=site.url("/blog/hybrid-search"))))
    [doc] = env.crawl(site.url("/blog/post.html")).documents
    assert doc.title == "Hybrid search"
    assert doc.source_url == site.url("/blog/hybrid-search")
    assert doc.published_at == datetime(2025, 2, 3, 10, tzinfo=UTC)
    assert doc.metadata["byline"] == "Jane Doe"
    assert PARAGRAPHS[2] in doc.content
    assert "Subscribe" not in doc.content


def test_malformed_and_non_utf8_pages(env: CrawlEnvironment, site: Site):
    broken = "<html><head><title>Broken page<body><div><p>" + " ".join(PARAGRAPHS) + "<p>Another <b>unclosed"
    site.route("/broken", Page(broken))
    [doc] = env.crawl(site.url("/broken")).documents
    assert PARAGRAPHS[0] in doc.content
    latin = article_page("Crème brûlée", charset="iso-8859-1", paragraphs=["Une crème brûlée, s'il vous plaît. " * 5])
    site.route("/latin", Page(latin.encode("latin-1"), content_type="text/html; charset=iso-8859-1"))
    [doc] = env.crawl(site.url("/latin")).documents
    assert doc.title == "Crème brûlée"
    assert "Une crème brûlée" in doc.content
    site.route("/empty", Page("<html><body><nav>Home</nav></body></html>"))
    with pytest.raises(FetchError, match="no article text"):
        env.crawl(site.url("/empty"))


def test_metadata_address_is_refused(env: CrawlEnvironment):
    with pytest.raises(BlockedURL, match="cloud metadata address"):
        env.crawl("http://169.254.169.254/latest/meta-data/")


# --- GitHub ----------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "Jane",
            "GIT_AUTHOR_EMAIL": "jane@example.com",
            "GIT_COMMITTER_NAME": "Jane",
            "GIT_COMMITTER_EMAIL": "jane@example.com",
            "HOME": str(repo),
            "PATH": "/usr/bin:/bin",
        },
    )


@pytest.fixture
def local_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "chunklet"
    files = {
        "README.md": "# chunklet\n\nSplits text into chunks that fit an embedding model.",
        "docs/usage.rst": "Usage\n=====\n\nCall ``chunk(text)``.",
        "chunklet/__init__.py": "def chunk(text: str) -> list[str]:\n    return text.split('\\n\\n')\n",
        "web/app.ts": "export const answer = 42;\n",
        "package-lock.json": '{"lockfileVersion": 3}',
        "node_modules/left-pad/index.js": "module.exports = 1;\n",
        "dist/bundle.js": "var a=1;",
        "web/lib.min.js": "var a=1;",
        "proto/api_pb2.py": "# generated\n",
        "logo.png": "\x89PNG",
        "data/blob.py": "x = 1\x00\x00binary",
        "big.py": "# big\n" + "x = 1\n" * 50_000,
    }
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    return repo


def test_github_crawler_reads_a_local_repository(fetcher: PoliteFetcher, local_repo: Path):
    env = CrawlEnvironment(
        fetcher=fetcher,
        validators=None,
        clone=no_clone,
        repository_limits=RepositoryLimits(max_file_bytes=100_000, max_repo_bytes=1_000_000),
    )
    result = env.crawl(str(local_repo))
    [doc] = result.documents
    assert (doc.category, doc.platform, doc.title) == (Category.REPOSITORY, Platform.GITHUB, "chunklet")
    paths = [f["path"] for f in doc.metadata["files"]]
    assert paths == ["README.md", "docs/usage.rst", "chunklet/__init__.py", "web/app.ts"]
    assert doc.metadata["languages"] == {"markdown": 1, "restructuredtext": 1, "python": 1, "typescript": 1}
    assert len(doc.metadata["commit"]) == 40
    assert "```python\ndef chunk(text: str)" in doc.content
    skipped = doc.metadata["skipped_files"]
    assert skipped == {
        "lock file": 1,
        "generated file": 2,
        "not a source or documentation file": 1,
        "binary": 1,
        "over the per-file size cap": 1,
    }


def test_github_repository_cap_and_clone_is_used_for_urls(fetcher: PoliteFetcher, local_repo: Path):
    cloned: list[str] = []

    def fake_clone(url: str, dest: Path) -> None:  # the real clone is tested below; no network here
        cloned.append(url)
        subprocess.run(["cp", "-r", str(local_repo), str(dest)], check=True)

    env = CrawlEnvironment(
        fetcher=fetcher,
        validators=None,
        clone=fake_clone,
        repository_limits=RepositoryLimits(max_file_bytes=100_000, max_repo_bytes=100),
    )
    [doc] = env.crawl("https://github.com/jane/chunklet.git").documents
    assert cloned == ["https://github.com/jane/chunklet"]
    assert (doc.source_url, doc.title) == ("https://github.com/jane/chunklet", "jane/chunklet")
    assert doc.metadata["skipped_files"]["over the per-repository size cap"] >= 1


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/jane/repo",
        "file:///tmp/repo",
        "ext::sh -c touch% /tmp/pwned",
        "https://github.com/jane/repo?x=1",
        "https://user:token@github.com/jane/repo",
        "https://github.com/-u/repo",
        "https://github.com/jane/repo/tree/main",
        "https://github.com/jane/repo;rm -rf ~",
    ],
)
def test_repository_urls_are_validated(url: str):
    with pytest.raises(FetchError):
        validate_repository_url(url)


def test_clone_refuses_private_hosts_before_running_git(tmp_path: Path):
    with pytest.raises(BlockedURL, match="loopback"):
        shallow_clone("https://127.0.0.1/jane/repo", tmp_path / "x", guard=UrlGuard.from_setting(""))
    assert not (tmp_path / "x").exists()
