"""mesh.media.fetch against a real HTTP server on loopback: the SSRF guard, status mapping and size caps."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from mesh.errors import InvalidInput, SourceNotFound, SourceRefused
from mesh.media import fetch

BODY = bytes(range(256)) * 40
PORT = web.AppKey("port", int)


async def _payload(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="video/mp4")


async def _chunked(request: web.Request) -> web.StreamResponse:
    """No Content-Length: the cap must hold while streaming."""
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(10):
        await response.write(BODY)
    await response.write_eof()
    return response


async def _to_loopback(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"http://127.0.0.1:{request.app[PORT]}/clip.mp4")


@pytest.fixture()
async def server():
    app = web.Application()
    app.router.add_get("/clip.mp4", _payload)
    app.router.add_get("/chunked.mp4", _chunked)
    app.router.add_get("/hop", lambda request: web.HTTPFound("/clip.mp4"))
    app.router.add_get("/to-loopback", _to_loopback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    app[PORT] = port
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_loopback_source_is_refused_unless_private_sources_are_allowed(server, tmp_path):
    dest = tmp_path / "clip.mp4"
    with pytest.raises(SourceRefused, match="non-public address 127.0.0.1"):
        await fetch(f"{server}/clip.mp4", dest, max_bytes=1 << 20, timeout=10)
    assert not dest.exists()
    progress: list[int] = []
    await fetch(f"{server}/clip.mp4", dest, max_bytes=1 << 20, timeout=10, allow_private=True,
                on_progress=lambda received, total: progress.append(received))
    assert dest.read_bytes() == BODY
    assert progress[-1] == len(BODY)


async def test_relative_redirects_are_followed(server, tmp_path):
    dest = await fetch(f"{server}/hop", tmp_path / "a.mp4", max_bytes=1 << 20, timeout=10, allow_private=True)
    assert dest.read_bytes() == BODY


async def test_missing_source_is_not_found(server, tmp_path):
    with pytest.raises(SourceNotFound, match="404"):
        await fetch(f"{server}/nope.mp4", tmp_path / "a.mp4", max_bytes=1 << 20, timeout=10, allow_private=True)


@pytest.mark.parametrize("path", ["/clip.mp4", "/chunked.mp4"], ids=["declared length", "streamed"])
async def test_oversized_source_is_invalid_input_and_leaves_no_file(server, tmp_path, path):
    dest = tmp_path / "a.mp4"
    with pytest.raises(InvalidInput, match="cap"):
        await fetch(f"{server}{path}", dest, max_bytes=len(BODY) - 1, timeout=10, allow_private=True)
    assert not dest.exists()


@pytest.mark.parametrize("url", ["ftp://example.com/a.mp4", "file:///etc/passwd", "http:///a.mp4"])
async def test_non_http_urls_are_invalid_input(url, tmp_path):
    with pytest.raises(InvalidInput):
        await fetch(url, tmp_path / "a.mp4", max_bytes=100, timeout=5)


async def test_redirect_to_a_private_address_is_refused_with_fake_public_dns(server, tmp_path, monkeypatch):
    """No public host exists here, so a fake resolver says `public.example` is public and an HTTP proxy
    (our loopback server) serves it; the redirect it answers points at loopback and must be refused."""
    loop = asyncio.get_running_loop()
    resolve = loop.getaddrinfo

    async def fake_getaddrinfo(host, port, *args, **kwargs):
        if host == "public.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        return await resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server)
    dest = tmp_path / "a.mp4"
    with pytest.raises(SourceRefused, match="127.0.0.1"):
        await fetch("http://public.example/to-loopback", dest, max_bytes=1 << 20, timeout=10)
    assert not dest.exists()
    await fetch("http://public.example/clip.mp4", dest, max_bytes=1 << 20, timeout=10)
    assert dest.read_bytes() == BODY, "the proxied public fetch itself must work, or the test proves nothing"
