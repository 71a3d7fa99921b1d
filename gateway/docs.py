"""The published contract, served by Envoy itself without a token: `GET /openapi.json` (the
generated gen/openapi.json) and a Swagger UI reference page at `GET /docs`.

Envoy answers these from files (`direct_response`), read once at start, so the docs cost
the Python server nothing, stay up while a backend is down, and cannot reach an rpc: the
transcoder and the request filter are switched off on these routes. Swagger UI's built
assets come from the swagger-ui-py wheel (a pinned dependency), never from a CDN; the
Content-Security-Policy keeps the page from loading or sending anything elsewhere.
"""

from __future__ import annotations

import pathlib
import re
from importlib import resources
from typing import Any

Json = dict[str, Any]

PAGE_DIR = pathlib.Path(__file__).resolve().parent / "docs"  # our index.html and init.js

_FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
# Envoy refuses direct_response bodies above this (its default is 4 KiB);
# swagger-ui-bundle.js is about 1.5 MiB.
MAX_BODY_BYTES = 4 * 1024 * 1024
_CSP = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI sets inline styles on its elements
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


def swagger_ui_dir() -> pathlib.Path:
    """The swagger-ui-py wheel's copy of Swagger UI's dist folder."""
    return pathlib.Path(str(resources.files("swagger_ui") / "static"))


def files(openapi_path: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    """URL path -> (file, content type) of everything these routes serve."""
    assets = swagger_ui_dir()
    return {
        "/openapi.json": (openapi_path, "application/json"),
        "/docs": (PAGE_DIR / "index.html", "text/html; charset=utf-8"),
        "/docs/init.js": (PAGE_DIR / "init.js", "text/javascript; charset=utf-8"),
        "/docs/swagger-ui-bundle.js": (
            assets / "swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
        ),
        "/docs/swagger-ui.css": (assets / "swagger-ui.css", "text/css; charset=utf-8"),
        "/docs/favicon-32x32.png": (assets / "favicon-32x32.png", "image/png"),
    }


def routes(openapi_path: pathlib.Path, *, disabled_filters: list[str]) -> list[Json]:
    """Envoy routes (before the catch-all) answering GET and HEAD for each file.

    `disabled_filters`: the http filters (by name) that must not run on these routes, such
    as the transcoder, which would refuse a path no rpc is bound to."""
    served = files(openapi_path)
    for path, (file, _) in served.items():
        if not file.is_file():
            raise FileNotFoundError(f"{path}: {file} is missing (run make gen / make venv)")
        if file.stat().st_size > MAX_BODY_BYTES:
            raise ValueError(f"{file} is larger than Envoy's direct response limit")
    disabled = disabled_config(disabled_filters)
    return [
        {
            "match": {
                "path": path,
                "headers": [
                    {"name": ":method", "string_match": {"safe_regex": {"regex": "^(GET|HEAD)$"}}}
                ],
            },
            "direct_response": {"status": 200, "body": {"filename": str(file)}},
            # The content type is set by local_reply_mappers(), which would override it.
            "response_headers_to_add": [
                _header("cache-control", "no-cache"),
                _header("x-content-type-options", "nosniff"),
                _header("content-security-policy", _CSP),
            ],
            "typed_per_filter_config": disabled,
        }
        for path, (file, _) in served.items()
    ]


def disabled_config(filters: list[str]) -> Json:
    """typed_per_filter_config that turns the named http filters off on a route."""
    return {name: {"@type": _FILTER_CONFIG, "disabled": True} for name in filters}


def local_reply_mappers(openapi_path: pathlib.Path) -> list[Json]:
    """Envoy treats a direct response as a local reply, so local_reply_config would wrap
    each file in the JSON error body. These mappers (put first) pass the file through as
    it is, with its own content type; they match only a success on one of these paths."""
    return [
        {
            "filter": {
                "and_filter": {
                    "filters": [
                        {
                            "status_code_filter": {
                                "comparison": {
                                    "op": "LE",
                                    "value": {
                                        "default_value": 299,
                                        "runtime_key": "customers.local_reply.docs",
                                    },
                                }
                            }
                        },
                        # :path holds the query too: /docs?x is still /docs.
                        {
                            "header_filter": {
                                "header": {
                                    "name": ":path",
                                    "string_match": {
                                        "safe_regex": {"regex": f"^{re.escape(path)}(\\?.*)?$"}
                                    },
                                }
                            }
                        },
                    ]
                }
            },
            "body_format_override": {
                "text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                "content_type": content_type,
            },
        }
        for path, (_, content_type) in files(openapi_path).items()
    ]


def _header(name: str, value: str) -> Json:
    return {"header": {"key": name, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
