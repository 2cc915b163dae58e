"""mesh.sources.fetch against a real HTTP server on loopback: the SSRF guard, status mapping and size caps."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from mesh.errors import InvalidInput, SourceNotFound, SourceRefused
from mesh.sources import SourcePolicy, fetch

LOOPBACK = SourcePolicy(allow_loopback=True)

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
    await fetch(f"{server}/clip.mp4", dest, max_bytes=1 << 20, timeout=10, policy=LOOPBACK,
                on_progress=lambda received, total: progress.append(received))
    assert dest.read_bytes() == BODY
    assert progress[-1] == len(BODY)


async def test_relative_redirects_are_followed(server, tmp_path):
    dest = await fetch(f"{server}/hop", tmp_path / "a.mp4", max_bytes=1 << 20, timeout=10, policy=LOOPBACK)
    assert dest.read_bytes() == BODY


async def test_missing_source_is_not_found(server, tmp_path):
    with pytest.raises(SourceNotFound, match="404"):
        await fetch(f"{server}/nope.mp4", tmp_path / "a.mp4", max_bytes=1 << 20, timeout=10, policy=LOOPBACK)


@pytest.mark.parametrize("path", ["/clip.mp4", "/chunked.mp4"], ids=["declared length", "streamed"])
async def test_oversized_source_is_invalid_input_and_leaves_no_file(server, tmp_path, path):
    dest = tmp_path / "a.mp4"
    with pytest.raises(InvalidInput, match="cap"):
        await fetch(f"{server}{path}", dest, max_bytes=len(BODY) - 1, timeout=10, policy=LOOPBACK)
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


PRIVATE_ADDRESSES = ["10.0.0.1", "172.16.5.4", "192.168.1.10", "169.254.169.254", "fd00::1", "fe80::1"]


def _fake_resolver(table: dict[str, list[str]]):
    """A resolver from a table: no DNS, and (with the client below) no traffic."""

    async def resolver(host: str, port: int) -> list[str]:
        return table.get(host, [host])

    return resolver


@pytest.fixture()
def no_connections(monkeypatch):
    """Fails the test if a download is attempted at all: the guard must refuse before any connection."""
    attempts: list[str] = []

    def stream(self, method, url, **kwargs):
        attempts.append(str(url))
        raise AssertionError(f"connection attempted to {url}")

    monkeypatch.setattr("httpx.AsyncClient.stream", stream)
    return attempts


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
async def test_loopback_switch_admits_loopback_only(address, tmp_path, no_connections):
    resolver = _fake_resolver({"internal.example": [address]})
    host = f"[{address}]" if ":" in address else address
    for url in (f"http://{host}/a.mp4", "http://internal.example/a.mp4"):
        with pytest.raises(SourceRefused, match="non-public address"):
            await fetch(url, tmp_path / "a.mp4", max_bytes=100, timeout=5, policy=LOOPBACK, resolver=resolver)
    assert no_connections == []


async def test_a_name_with_any_private_address_is_refused(tmp_path, no_connections):
    """One public and one private answer (a rebinding trick): refused."""
    resolver = _fake_resolver({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(SourceRefused, match="10.0.0.7"):
        await fetch("http://mixed.example/a.mp4", tmp_path / "a.mp4", max_bytes=100, timeout=5, policy=LOOPBACK,
                    resolver=resolver)
    assert no_connections == []


async def test_explicit_allowlist_admits_only_what_it_names(tmp_path, no_connections):
    policy = SourcePolicy.build(False, ["10.1.2.0/24", "media.internal"])
    resolver = _fake_resolver({"media.internal": ["192.168.7.7"], "other.internal": ["192.168.7.7"]})
    assert policy.permits("10.1.2.3", "10.1.2.3") and policy.permits("media.internal", "192.168.7.7")
    for url in ("http://10.1.3.1/a.mp4", "http://169.254.169.254/latest/meta-data", "http://127.0.0.1/a.mp4",
                "http://other.internal/a.mp4"):
        with pytest.raises(SourceRefused):
            await fetch(url, tmp_path / "a.mp4", max_bytes=100, timeout=5, policy=policy, resolver=resolver)
    assert no_connections == []


def test_allowlist_setting_is_comma_separated_and_checked(monkeypatch):
    from mesh.config import ConfigError, load_settings
    from upscaler_svc.config import UpscalerSettings

    monkeypatch.setenv("UPSCALER_SOURCE_ALLOWLIST", "10.1.2.0/24, media.internal")
    limits = load_settings(UpscalerSettings).source_limits()
    assert limits.policy.hosts == {"media.internal"} and not limits.policy.allow_loopback
    monkeypatch.setenv("UPSCALER_SOURCE_ALLOWLIST", "10.1.2.0/24, not a host!")
    with pytest.raises(ConfigError, match="UPSCALER_SOURCE_ALLOWLIST"):
        load_settings(UpscalerSettings)
