"""The API's documentation pages render offline: every script, stylesheet and icon they reference is served by
the app itself, from installed packages, never from a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import pytest
from litestar.testing import TestClient

from twin_platform.api.app import create_app
from twin_platform.api.state import ApiState
from twin_platform.settings import Settings

# Hosts the stock Litestar pages load from; none may appear anywhere in a page.
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdn.redoc.ly", "fonts.googleapis.com", "fonts.gstatic.com")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


class AssetLinks(HTMLParser):
    """Every URL a page makes the browser fetch: ``<script src>``, ``<link href>``, ``<img src>``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            if (url := attributes.get(name)) and tag in {"script", "link", "img"}:
                self.urls.append((tag, url))


def asset_links(html: str) -> list[tuple[str, str]]:
    parser = AssetLinks()
    parser.feed(html)
    return parser.urls


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    """The real app; the docs need no database or model, so its per-process state is a stand-in."""
    settings = Settings(data_dir=tmp_path / "data")
    state = cast(ApiState, SimpleNamespace(settings=settings, query_log=None))
    with TestClient(create_app(settings, state=state)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("page", "global_name"),
    [("/schema", "SwaggerUIBundle"), ("/schema/swagger", "SwaggerUIBundle"), ("/schema/redoc", "Redoc")],
)
def test_docs_page_and_every_asset_it_references_come_from_the_app(
    client: TestClient[Any], page: str, global_name: str
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "twin_platform RAG API" in html  # the title, from the OpenAPI document
    assert '"/v1/rag"' in html  # the document is inlined into the page
    for host in CDN_HOSTS:
        assert host not in html, f"{page} still refers to {host}"

    links = asset_links(html)
    scripts = [url for tag, url in links if tag == "script"]
    assert scripts, f"{page} loads no script"
    assert any(tag == "link" and url.endswith(".css") for tag, url in links) or global_name == "Redoc"
    defined = ""
    for tag, url in links:
        parts = urlsplit(url)
        assert not parts.netloc, f"{page}: {tag} {url} is absolute to another host"
        assert not parts.scheme, f"{page}: {tag} {url} is absolute"
        asset = client.get(urljoin(f"http://testserver{page}", url))
        assert asset.status_code == 200, (page, url)
        expected = CONTENT_TYPES[Path(parts.path).suffix]
        assert expected in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 500, url
        if tag == "script":
            defined += asset.text
    # The page's inline script calls a global that one of the served scripts defines.
    assert f"{global_name}(" in html or f"{global_name}.init(" in html
    assert global_name in defined


def test_the_openapi_document_and_unknown_assets(client: TestClient[Any]) -> None:
    assert "/v1/rag" in client.get("/schema/openapi.json").json()["paths"]
    assert client.get("/schema/openapi.yaml").status_code == 200
    assert client.get("/schema/assets/swagger-ui/no-such-file.js").status_code == 404
