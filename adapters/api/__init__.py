"""The REST API (/api/v1), its OpenAPI document and offline docs page, and the web view, mounted
on the HTTP app by `mount`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from adapters.api.context import WebContext
from adapters.api.problems import install as install_problems
from adapters.api.routes import api_router, problem_schema_components

__all__ = ["WebContext", "mount"]

_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Opsroom API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>
"""
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


def _swagger_dir() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def mount(app: FastAPI, ctx: WebContext) -> None:
    from adapters.web import SecurityHeaders, web_router

    app.state.web = ctx
    install_problems(app)
    api = api_router(ctx)
    app.include_router(api)
    app.include_router(web_router(ctx))
    app.add_middleware(SecurityHeaders)
    document: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        if not document:
            doc = get_openapi(
                title="Opsroom API",
                version="1",
                description=(
                    "Incidents, their timeline and action items. Send "
                    "`Authorization: Bearer <token>` (make one with `opsroom token create`). "
                    "Errors are `application/problem+json`."
                ),
                routes=api.routes,
            )
            problem_schema_components(doc)
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            doc["security"] = [{"bearer": []}]
            document.update(doc)
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_DOCS_HTML)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        folder = _swagger_dir()
        path = folder / name if folder else None
        kind = _ASSET_TYPES.get(Path(name).suffix)
        if path is None or "/" in name or kind is None or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            path.read_bytes(), media_type=kind, headers={"Cache-Control": "public, max-age=3600"}
        )
