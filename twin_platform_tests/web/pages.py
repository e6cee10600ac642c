"""Fixture pages and feeds written for these tests, in the structure each platform really serves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

from twin_platform_tests.web.server import Page, Site

PARAGRAPHS = [
    "Most retrieval bugs I have debugged were data bugs wearing a model costume.",
    "We kept the index in Postgres because the filters already lived there, and the joins were free.",
    "The short version: measure recall before you tune anything else.",
]


def medium_feed(site: Site, user: str = "@jane", posts: int = 3) -> str:
    items = []
    for n in range(1, posts + 1):
        when = format_datetime(datetime(2025, 1, n, 9, tzinfo=UTC))
        body = "".join(f"<p>{p} (post {n})</p>" for p in PARAGRAPHS)
        items.append(f"""<item>
<title><![CDATA[Medium post {n}]]></title>
<link>{site.url(f"/{user}/medium-post-{n}-a1b2c{n}")}?source=rss-{n}</link>
<guid isPermaLink="false">https://medium.com/p/a1b2c{n}</guid>
<category><![CDATA[postgres]]></category><category><![CDATA[rag]]></category>
<dc:creator><![CDATA[Jane Doe]]></dc:creator>
<pubDate>{when}</pubDate>
<atom:updated>2025-01-0{n}T09:00:00.000Z</atom:updated>
<content:encoded><![CDATA[<h3>Medium post {n}</h3>{body}<figure><img src="https://cdn-images-1.medium.com/x.png"></figure>]]></content:encoded>
</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss xmlns:dc="http://purl.org/dc/elements/1.1/"
xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"
xmlns:cc="http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html"><channel>
<title><![CDATA[Stories by Jane Doe on Medium]]></title>
<description><![CDATA[Stories by Jane Doe on Medium]]></description>
<link>{site.url("/" + user)}?source=rss</link><generator>Medium</generator>
<lastBuildDate>Mon, 06 Jan 2025 09:00:00 GMT</lastBuildDate><webMaster><![CDATA[yourfriends@medium.com]]></webMaster>
{"".join(items)}
</channel></rss>"""


def article_page(
    title: str,
    *,
    canonical: str | None = None,
    published: str = "2025-02-03T10:00:00Z",
    extra_body: str = "",
    charset: str = "utf-8",
    paragraphs: list[str] | None = None,
) -> str:
    body = "".join(f"<p>{p}</p>" for p in (paragraphs or PARAGRAPHS))
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="{charset}"><title>{title} | Jane's blog</title>
{link}<meta property="og:title" content="{title}"><meta name="author" content="Jane Doe">
<meta property="article:published_time" content="{published}"></head>
<body><header><nav><a href="/">Home</a> <a href="/about">About</a> <a href="/subscribe">Subscribe</a></nav></header>
<main><article><h1>{title}</h1><p class="byline">By Jane Doe</p>{body}{extra_body}</article></main>
<footer><p>© 2025 Jane Doe. All rights reserved.</p><a href="/rss">RSS</a></footer></body></html>"""


def substack_archive_entry(site: Site, n: int, **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": 100 + n,
        "publication_id": 42,
        "title": f"Substack issue {n}",
        "subtitle": f"Subtitle {n}",
        "slug": f"issue-{n}",
        "post_date": f"2025-03-{n:02d}T07:00:00.000Z",
        "audience": "everyone",
        "canonical_url": site.url(f"/p/issue-{n}"),
        "type": "newsletter",
        "wordcount": 420,
        "description": "A teaser, not the post.",
        "truncated_body_text": "A teaser...",
    }
    entry.update(overrides)
    return entry


def substack_post_page(title: str, n: int) -> str:
    body = "".join(f"<p>{p} (issue {n})</p>" for p in PARAGRAPHS)
    return f"""<!DOCTYPE html><html><head><title>{title} - Jane's Newsletter</title>
<meta property="og:title" content="{title}"><script type="application/ld+json">{{"@context":"https://schema.org",
"@type":"NewsArticle","headline":"{title}","datePublished":"2025-03-{n:02d}T07:00:00+00:00",
"author":[{{"@type":"Person","name":"Jane Doe"}}]}}</script></head><body>
<div class="topbar"><a href="/">Jane's Newsletter</a><button>Subscribe</button><button>Sign in</button></div>
<article class="post newsletter-post"><div class="post-header"><h1 class="post-title published">{title}</h1>
<h3 class="subtitle">Subtitle {n}</h3><div class="post-meta">Jane Doe · Mar {n}, 2025</div></div>
<div class="available-content"><div class="body markup" dir="auto">{body}</div></div>
<div class="subscription-widget"><p>Thanks for reading! Subscribe for free to receive new posts.</p></div>
</article><div class="post-footer"><a>Share</a> <a>Like</a> <a>Comment</a></div></body></html>"""


def install_substack(site: Site, posts: int = 15) -> None:
    """A publication with ``posts`` newsletter posts (+1 paid, +1 podcast), archive pages of 12."""
    entries = [substack_archive_entry(site, n) for n in range(1, posts + 1)]
    entries.insert(3, substack_archive_entry(site, 90, audience="only_paid"))
    entries.insert(5, substack_archive_entry(site, 91, type="podcast"))

    def archive(raw_path: str) -> Page:
        query = dict(part.split("=", 1) for part in raw_path.split("?", 1)[1].split("&") if "=" in part)
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 12))
        return Page(json.dumps(entries[offset : offset + limit]), content_type="application/json", etag=False)

    site.route("/api/v1/archive", archive)
    for n in range(1, posts + 1):
        site.route(f"/p/issue-{n}", Page(substack_post_page(f"Substack issue {n}", n)))


def linkedin_post_page(site: Site, text: str) -> str:
    ld = {
        "@context": "http://schema.org",
        "@type": "SocialMediaPosting",
        "@id": site.url("/posts/jane-doe_rag-activity-7100000000000000001"),
        "datePublished": "2025-04-01T12:00:00.000Z",
        "articleBody": text,
        "author": {"@type": "Person", "name": "Jane Doe", "url": "https://www.linkedin.com/in/jane-doe"},
        "interactionStatistic": [{"@type": "InteractionCounter", "userInteractionCount": 42}],
    }
    return f"""<!DOCTYPE html><html lang="en"><head><title>Jane Doe on LinkedIn: {text[:40]}</title>
<meta property="og:description" content="{text[:100]}">
<script type="application/ld+json">{json.dumps(ld)}</script></head><body>
<nav class="nav"><a href="/signup">Join now</a> <a href="/login">Sign in</a></nav>
<main><section class="core-rail"><article class="main-feed-activity-card">
<p class="attributed-text-segment-list__content">{text}</p></article></section></main></body></html>"""


AUTHWALL_PAGE = """<!DOCTYPE html><html><head><title>Sign Up | LinkedIn</title></head><body>
<main class="authwall"><h1>Join LinkedIn</h1><form class="authwall-join-form"><input name="email"></form></main>
</body></html>"""


def rss_feed(site: Site, items: int = 2) -> str:
    entries = "".join(
        f"""<item><title>Feed post {n}</title><link>{site.url(f"/p/feed-post-{n}")}</link>
<pubDate>{format_datetime(datetime(2025, 5, n, tzinfo=UTC))}</pubDate><dc:creator>Jane Doe</dc:creator>
<content:encoded><![CDATA[<p>Feed paragraph one of post {n}.</p><p>Feed paragraph two.</p>]]></content:encoded>
</item>"""
        for n in range(1, items + 1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Jane's Newsletter</title>
<link>{site.url("/")}</link><language>en</language>{entries}</channel></rss>"""
