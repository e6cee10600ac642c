"""The API's documentation pages, served without internet.

Litestar's OpenAPI UI plugins load their JavaScript, CSS and favicon from CDNs by default, so on an air-gapped
machine ``/schema`` and ``/schema/swagger`` render blank. Here every asset comes from the installed package
``openapi-ui-bundles`` (Swagger UI 5 and ReDoc 2, Apache-2.0), served by the app itself under
``/schema/assets/``:

- ``/schema`` and ``/schema/swagger``: Swagger UI (try requests out with an API key: "Authorize")
- ``/schema/redoc``: ReDoc (no Google Fonts)
- ``/schema/openapi.json``, ``/schema/openapi.yaml``: the document itself
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import redoc, swagger_ui

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
SWAGGER_ASSETS = f"{ASSETS_PATH}/swagger-ui"
REDOC_ASSETS = f"{ASSETS_PATH}/redoc"
FAVICON = f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>"


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI first (so it is also the page at ``/schema``), then ReDoc and the raw document."""
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
            favicon=FAVICON,
        ),
        RedocRenderPlugin(js_url=f"{REDOC_ASSETS}/redoc.standalone.js", google_fonts=False, favicon=FAVICON),
        JsonRenderPlugin(),
        YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
    ]


def docs_assets() -> list[Router]:
    """The routers that serve the pages' JavaScript, CSS and icons from the installed packages."""
    cache = CacheControlHeader(max_age=86_400, public=True)
    return [
        create_static_files_router(
            path=SWAGGER_ASSETS, directories=[swagger_ui.static_path], name="swagger-ui-assets", cache_control=cache
        ),
        create_static_files_router(
            path=REDOC_ASSETS, directories=[redoc.static_path], name="redoc-assets", cache_control=cache
        ),
    ]
