"""The explorer's web app (Starlette): one route per page, each served as HTML
from a Jinja2 template (autoescaped) and as JSON under /api with the same data,
plus /static (CSS and the small script that keeps the home page live) and
/healthz. Nothing is loaded from outside the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from grpc import aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from devnet.explorer.follower import describe_error, follow_chain
from devnet.explorer.index import ChainIndex
from devnet.explorer.sources import Sources
from devnet.explorer.views import (
    Explorer,
    PageError,
    Redirect,
    parse_address,
    parse_height,
    parse_id,
)
from xrollup.amounts import format_units

log = logging.getLogger("explorer")
HERE = Path(__file__).parent
API = "/api"


def short(hex_id: str | None, head: int = 8, tail: int = 6) -> str:
    """'3f2a9c01…e4d2b0' for a long hex id (0x kept on addresses)."""
    if not hex_id:
        return ""
    if len(hex_id) <= head + tail + 3:
        return hex_id
    prefix = "0x" if hex_id.startswith("0x") else ""
    body = hex_id.removeprefix("0x")
    return f"{prefix}{body[:head]}…{body[-tail:]}"


def clock(unix_ms: int | None) -> str:
    """Local time of day with milliseconds: '14:03:07.412'."""
    if not unix_ms:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(unix_ms / 1000)) + f".{unix_ms % 1000:03d}"


def make_templates(sources: Sources) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def units(base: str | int | None, asset: str) -> str:
        """Base units as a decimal in the asset's units, from genesis."""
        if base is None:
            return "-"
        decimals = sources.decimals(asset)
        if decimals is None:
            return f"{base} {asset} (base units)"
        return f"{format_units(int(base), decimals)} {asset}"

    env.filters.update(short=short, clock=clock, units=units)
    env.globals["rollups"] = sources.genesis.rollup_names
    env.globals["chain_id"] = sources.genesis.chain_id
    return env


Build = Callable[[Request], Awaitable[dict[str, Any]]]


def create_app(sources: Sources, index: ChainIndex) -> Starlette:
    explorer = Explorer(sources, index)
    templates = make_templates(sources)

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def page(template: str, build: Build) -> tuple[Callable[..., Any], Callable[..., Any]]:
        async def html(request: Request) -> Response:
            return render(template, data=await build(request), path=request.url.path)

        async def api(request: Request) -> Response:
            return JSONResponse(await build(request))

        return html, api

    def param(request: Request, name: str) -> str:
        return str(request.path_params[name])

    async def build_home(request: Request) -> dict[str, Any]:
        return await explorer.home()

    async def build_block(request: Request) -> dict[str, Any]:
        return await explorer.block(parse_height(param(request, "height")))

    async def build_tx(request: Request) -> dict[str, Any]:
        return await explorer.tx(parse_id(param(request, "id"), "transaction"))

    async def build_bundle(request: Request) -> dict[str, Any]:
        return await explorer.bundle(parse_id(param(request, "id"), "bundle"))

    async def build_option(request: Request) -> dict[str, Any]:
        return await explorer.option(parse_id(param(request, "id"), "option"))

    async def build_lien(request: Request) -> dict[str, Any]:
        return await explorer.lien(parse_id(param(request, "id"), "lien"))

    async def build_account(request: Request) -> dict[str, Any]:
        return await explorer.account(parse_address(param(request, "address")))

    async def build_margin(request: Request) -> dict[str, Any]:
        return await explorer.margin(parse_address(param(request, "address")))

    pages = {
        "/": ("home.html", build_home),
        "/block/{height}": ("block.html", build_block),
        "/tx/{id}": ("tx.html", build_tx),
        "/bundle/{id}": ("bundle.html", build_bundle),
        "/option/{id}": ("option.html", build_option),
        "/lien/{id}": ("lien.html", build_lien),
        "/account/{address}": ("account.html", build_account),
        "/margin/{address}": ("margin.html", build_margin),
    }
    routes: list[Route | Mount] = []
    for path, (template, build) in pages.items():
        html, api = page(template, build)
        routes.append(Route(path, html))
        routes.append(Route(API + ("/home" if path == "/" else path), api))

    async def search(request: Request) -> Response:
        url = await explorer.search(request.query_params.get("q", ""))
        return RedirectResponse(url, status_code=303)

    async def search_api(request: Request) -> Response:
        url = await explorer.search(request.query_params.get("q", ""))
        return JSONResponse({"url": url})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "head": index.head, "stream_error": index.stream_error})

    routes += [
        Route("/search", search),
        Route(API + "/search", search_api),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(API + "/")

    def error(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        return render("error.html", status=status, status_code=status, message=message, path="")

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return error(request, exc.status, exc.message)

    async def on_redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        path = (API + exc.path) if wants_json(request) else exc.path
        return RedirectResponse(path, status_code=307)

    async def on_rpc_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, aio.AioRpcError)
        return error(request, 503, f"A server did not answer: {describe_error(exc)}.")

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return error(request, 404, f"There is no page at {request.url.path}.")

    async def on_internal(request: Request, exc: Exception) -> Response:
        log.exception("%s failed", request.url.path, exc_info=exc)
        return error(request, 500, f"The explorer failed on this page: {describe_error(exc)}.")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(follow_chain(sources, index))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sources.close()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            PageError: on_page_error,
            Redirect: on_redirect,
            aio.AioRpcError: on_rpc_error,
            404: on_not_found,
            Exception: on_internal,
        },
    )
