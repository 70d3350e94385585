"""The dashboard's web application (Starlette), read-only over one or more stores.

Pages: ``/`` studies, ``/s/{sid}`` a study (live), ``/s/{sid}/report`` the full HTML report,
``/r/{sid}/{key}`` a run, ``/compare?a=&b=`` two revisions or studies side by side.
JSON API (what the pages use; documented in docs/serve.md): ``/api/studies``,
``/api/studies/{sid}``, ``/api/studies/{sid}/runs``, ``/api/studies/{sid}/analysis``,
``/api/runs/{sid}/{key}``. Live fragments: ``/s/{sid}/progress``, ``/s/{sid}/analysis``,
``/fragments/studies``, polled by ``static/app.js`` with ``If-None-Match``.

Security: only GET and HEAD (405 otherwise); a strict Content-Security-Policy on every
response (``script-src 'self'``: no inline script or handler anywhere; the full report page,
which carries the report's one inline script, gets that script's hash instead); the Host header
must name the address served (no DNS rebinding); with a token (required off loopback) every
request must carry it (``Authorization: Bearer``, ``?token=`` once, then an HttpOnly
SameSite=Strict cookie). Path parameters are matched against fixed patterns before any lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ablab.jsonutil import clean_json
from ablab.serve import pages
from ablab.serve.catalog import Catalog, NotFound

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
COOKIE = "ablab_token"


def make_app(stores: list[Path], *, token: str | None = None, hosts: list[str] | None = None):
    """The ASGI app. ``token``: required on every request when given. ``hosts``: accepted Host
    header names (default: loopback names)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    catalog = Catalog(stores)
    static = _static_files()

    def json_response(obj: Any, status: int = 200) -> Response:
        return JSONResponse(clean_json(obj), status_code=status)

    def cached(request: Request, body: str, media: str = "text/html; charset=utf-8") -> Response:
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type=media, headers={"ETag": etag, "Cache-Control": "no-cache"})

    async def index(request: Request) -> Response:
        studies = await _thread(catalog.studies)
        body = pages.live(
            "studies-live", "/fragments/studies", pages.studies_fragment(studies)
        ) + pages.compare_form(studies)
        return HTMLResponse(pages.page("Studies", body))

    async def studies_fragment(request: Request) -> Response:
        return cached(request, pages.studies_fragment(await _thread(catalog.studies)))

    async def study(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"])
        return HTMLResponse(pages.study_page(loaded))

    async def progress(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"], analyse=False)
        return cached(request, pages.progress_fragment(loaded))

    async def analysis(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"])
        return cached(request, await _thread(pages.analysis_fragment, loaded))

    async def report(request: Request) -> Response:
        from ablab.report import render
        from ablab.report.html_parts import script_hash

        loaded = await _thread(catalog.load, request.path_params["sid"])
        if loaded.analysis is None or "error" in loaded.analysis:
            raise NotFound("no analysis yet: no finished run of the baseline")
        res = loaded.results
        text = await _thread(
            render,
            loaded.analysis,
            "html",
            runs=res.runs,
            series=res.series,
            provenance=res.provenance,
            verifications=loaded.verifications,
        )
        csp = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src {script_hash()}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return HTMLResponse(text, headers={"Content-Security-Policy": csp})

    async def run_page(request: Request) -> Response:
        loaded, run = await _thread(
            catalog.run, request.path_params["sid"], request.path_params["key"]
        )
        return HTMLResponse(pages.run_page(loaded, run))

    async def compare(request: Request) -> Response:
        a = await _thread(catalog.load, request.query_params.get("a", ""))
        b = await _thread(catalog.load, request.query_params.get("b", ""))
        return HTMLResponse(pages.compare_page(a, b))

    async def api_studies(request: Request) -> Response:
        return json_response(await _thread(catalog.studies))

    async def api_study(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"], analyse=False)
        s = loaded.study
        return json_response(
            {
                "id": loaded.sid,
                "name": s["name"],
                "revision": s["revision"],
                "counts": loaded.counts,
                "spec": s.get("spec"),
                "fingerprint": s.get("fingerprint"),
                "created_at": s.get("created_at"),
            }
        )

    async def api_runs(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"], analyse=False)
        return json_response(loaded.results.runs.to_dict("records"))

    async def api_analysis(request: Request) -> Response:
        loaded = await _thread(catalog.load, request.path_params["sid"])
        if loaded.analysis is None:
            return json_response({"error": "no finished runs yet"}, 404)
        return json_response(loaded.analysis)

    async def api_run(request: Request) -> Response:
        _, run = await _thread(catalog.run, request.path_params["sid"], request.path_params["key"])
        keep = (
            "key", "variant", "seed", "status", "attempts", "config", "metrics", "series",
            "error", "started_at", "ended_at", "wall_seconds", "cpu_seconds", "peak_rss_mb",
            "logs",
        )  # fmt: skip
        return json_response({k: run.get(k) for k in keep})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise NotFound(f"no static file {name}")
        media, body = static[name]
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # browsers ask for it; there is none

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
        Route("/fragments/studies", studies_fragment, methods=["GET", "HEAD"]),
        Route("/s/{sid:str}", study, methods=["GET", "HEAD"]),
        Route("/s/{sid:str}/progress", progress, methods=["GET", "HEAD"]),
        Route("/s/{sid:str}/analysis", analysis, methods=["GET", "HEAD"]),
        Route("/s/{sid:str}/report", report, methods=["GET", "HEAD"]),
        Route("/r/{sid:str}/{key:str}", run_page, methods=["GET", "HEAD"]),
        Route("/compare", compare, methods=["GET", "HEAD"]),
        Route("/api/studies", api_studies, methods=["GET", "HEAD"]),
        Route("/api/studies/{sid:str}", api_study, methods=["GET", "HEAD"]),
        Route("/api/studies/{sid:str}/runs", api_runs, methods=["GET", "HEAD"]),
        Route("/api/studies/{sid:str}/analysis", api_analysis, methods=["GET", "HEAD"]),
        Route("/api/runs/{sid:str}/{key:str}", api_run, methods=["GET", "HEAD"]),
        Route("/static/{name:str}", asset, methods=["GET", "HEAD"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        msg = getattr(exc, "message", None) or getattr(exc, "detail", None) or "not found"
        if request.url.path.startswith("/api/"):
            return json_response({"error": str(msg)}, 404)
        return HTMLResponse(pages.page("Not found", f"<p>{pages.esc(msg)}</p>"), status_code=404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return Response("only GET and HEAD: this dashboard never writes\n", status_code=405,
                        headers={"Allow": "GET, HEAD"})  # fmt: skip

    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost", "[::1]", "::1"]),
        Middleware(_Guard, token=token),
    ]  # fmt: skip
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={NotFound: not_found, 404: not_found, 405: method_not_allowed},
    )


class _Guard:
    """Pure ASGI middleware: methods, token, security headers on every response."""

    def __init__(self, app, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, RedirectResponse

        request = Request(scope)
        if scope["method"] not in ("GET", "HEAD"):
            resp = PlainTextResponse(
                "only GET and HEAD: this dashboard never writes\n",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            return await resp(scope, receive, _secure(send))
        if self.token is not None:
            given = request.query_params.get("token")
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            cookie = request.cookies.get(COOKIE)
            if given is not None and _same(given, self.token):
                # once from the printed URL; then a cookie, and the token leaves the address bar
                url = request.url.remove_query_params("token")
                resp = RedirectResponse(str(url.path) + (f"?{url.query}" if url.query else ""), 303)
                resp.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return await resp(scope, receive, _secure(send))
            if not any(_same(x, self.token) for x in (bearer, cookie) if x):
                resp = PlainTextResponse(
                    "401: this dashboard needs its access token (the URL printed by ablab serve)\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return await resp(scope, receive, _secure(send))
        return await self.app(scope, receive, _secure(send))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _secure(send):
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            extra = {
                b"content-security-policy": CSP.encode(),
                b"x-content-type-options": b"nosniff",
                b"referrer-policy": b"no-referrer",
                b"x-frame-options": b"DENY",
            }
            headers += [(k, v) for k, v in extra.items() if k not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _thread(fn, *args, **kwargs):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def _static_files() -> dict[str, tuple[str, bytes]]:
    """The vendored assets (our own; nothing from a CDN), plus the report's CSS."""
    from ablab.report.html_parts import CSS

    base = resources.files("ablab.serve") / "static"
    js = (base / "app.js").read_bytes()
    css = CSS.encode() + b"\n" + (base / "app.css").read_bytes()
    return {
        "app.js": ("text/javascript; charset=utf-8", js),
        "app.css": ("text/css; charset=utf-8", css),
    }


def api_doc() -> str:
    return json.dumps({"pages": __doc__}, indent=1)
