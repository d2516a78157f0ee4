"""The explorer's web layer (Starlette): a page and a JSON API over one `ExplorerSession`.

Endpoints (every one reads only the run folder it was started on; none takes a path):

- ``GET /``, ``GET /static/NAME``: the page and its script and style (a fixed list of files).
- ``GET /api/run``: the run described (backbone, dataset, constraints with metrics, last evaluation).
- ``POST /api/sample``: ``{"mode", "attrs", "rules", "method", "n", "seed"}`` -> samples as media.
- ``POST /api/download``: the same request -> a zip of the files the modality's writer writes.
- ``POST /api/examples``: ``{"start" | "random", "count", "seed"}`` -> a strip of test examples.
- ``POST /api/edit``: ``{"test_index", "attrs", "rules", "strength", "steps", "seed"}`` -> before/after.
- ``POST /api/edit-upload?suffix=.png&attrs=...``: the body is the file to edit (at most
  `session.MAX_UPLOAD` bytes), read by the modality's writer.

Bad parameters get a 4xx answer ``{"error": "one line"}``; nothing answers with a traceback.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from lctk.util.errors import LctkError
from lctk.serve.session import MAX_UPLOAD, ExplorerSession

STATIC = Path(__file__).parent / "static"
#: The only files the page is made of, by the name the browser asks for.
PAGE_FILES = {"index.html": "text/html", "explorer.js": "text/javascript", "explorer.css": "text/css"}
#: Largest JSON body accepted.
MAX_JSON = 64 * 1024


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split()) or "failed"}, status_code=status)


async def _json_body(request: Request) -> dict:
    body = await _read_limited(request, MAX_JSON)
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise LctkError("the request body is not valid JSON") from None


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class TooLarge(Exception):
    """A request body over its limit."""

    def __init__(self, limit: int):
        super().__init__(f"the request is larger than {limit} bytes")


def create_app(run: str | Path, session: ExplorerSession | None = None) -> Starlette:
    """The explorer for the run folder ``run`` (the run is opened now, so a bad run fails before serving)."""
    session = session or ExplorerSession(run)

    def api(handler, body: bool = True):
        async def endpoint(request: Request) -> Response:
            payload = await _json_body(request) if body else dict(request.query_params)
            return JSONResponse(await run_in_threadpool(handler, payload))
        return endpoint

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in PAGE_FILES:
            return _error(f"no page file {name!r}", 404)
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name], headers={"Cache-Control": "no-cache"})

    async def download(request: Request) -> Response:
        data, name = await run_in_threadpool(session.download, await _json_body(request))
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def edit_upload(request: Request) -> Response:
        query = request.query_params
        suffix = query.get("suffix", "")
        params = {"attrs": query.getlist("attrs"), "rules": query.getlist("rules")}
        for key in ("strength", "steps", "seed"):
            if key in query:
                params[key] = query[key]
        unknown = sorted(set(query) - {"suffix", "attrs", "rules", "strength", "steps", "seed"})
        if unknown:
            raise LctkError(f"unknown parameter {unknown[0]!r}")
        data = await _read_limited(request, MAX_UPLOAD)
        return JSONResponse(await run_in_threadpool(session.edit, params, (data, suffix)))

    async def bad_request(request: Request, exc: LctkError) -> Response:
        return _error(str(exc))

    async def too_large(request: Request, exc: TooLarge) -> Response:
        return _error(str(exc), 413)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return _error(f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", 500)

    routes = [
        Route("/", page),
        Route("/static/{name}", page),
        Route("/api/run", api(lambda _: session.describe(), body=False)),
        Route("/api/sample", api(session.sample), methods=["POST"]),
        Route("/api/download", download, methods=["POST"]),
        Route("/api/examples", api(session.examples), methods=["POST"]),
        Route("/api/edit", api(session.edit), methods=["POST"]),
        Route("/api/edit-upload", edit_upload, methods=["POST"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        session.close()

    handlers = {LctkError: bad_request, TooLarge: too_large, Exception: internal_error}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.session = session
    return app
