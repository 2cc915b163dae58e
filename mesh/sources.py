"""Fetching a job's source video: the SSRF guard, the size cap and total timeout, and one probe.

Validators send presigned URLs on the public internet. Every hop of a download (redirects included) is
resolved first and refused unless every address it resolves to is public, so a URL can never make a
service connect to a private, link-local or cloud-metadata address. Local demos and tests serve sources
on loopback: `SourcePolicy.allow_loopback` admits loopback addresses only, and `allowed` admits an
explicit list of host names or CIDRs — never whole private or link-local ranges by one switch.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from mesh.errors import DependencyUnavailable, InvalidInput, SourceNotFound, SourceRefused
from mesh.media import MAX_DIMENSION, MediaFacts, probe
from mesh.progress import ProgressReporter

MAX_REDIRECTS = 5
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(rf"^{LABEL}(?:\.{LABEL})*\.?$", re.IGNORECASE)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class SourcePolicy:
    """Which hosts a service may download sources from, beyond the public internet."""

    allow_loopback: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def build(cls, allow_loopback: bool = False, allowed: Iterable[str] = ()) -> SourcePolicy:
        """`allowed` holds host names and CIDRs (10.1.2.0/24, fd00::/64, 192.168.1.5); ValueError names a bad
        entry."""
        hosts, networks = set(), []
        for entry in (item.strip() for item in allowed):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not HOST_NAME.match(entry):
                    raise ValueError(f"{entry!r} is neither a host name nor a CIDR") from None
                hosts.add(entry.lower().rstrip("."))
        return cls(allow_loopback, frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: str) -> bool:
        ip = _address(address)
        if ip.is_global and not ip.is_multicast:
            return True
        if host.lower().rstrip(".") in self.hosts:
            return True
        if self.allow_loopback and ip.is_loopback:
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)


async def check_host(url: str, policy: SourcePolicy, resolver: Resolver = resolve) -> None:
    """Refuse a URL before any connection unless every address its host resolves to is permitted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"source URL must be http(s), got {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InvalidInput("source URL has no host")
    try:
        addresses = await resolver(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"source host {parts.hostname!r} does not resolve") from exc
    if not addresses:
        raise InvalidInput(f"source host {parts.hostname!r} does not resolve")
    refused = sorted({address for address in addresses if not policy.permits(parts.hostname, address)})
    if refused:
        raise SourceRefused(f"source host {parts.hostname!r} resolves to non-public address {refused[0]}, "
                            "which this service is not configured to fetch from")


async def fetch(url: str, dest: Path, *, max_bytes: int, timeout: float, policy: SourcePolicy = SourcePolicy(),
                resolver: Resolver = resolve, on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Download `url` to `dest`, following redirects; every hop is checked against the SSRF guard."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0)) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    await check_host(url, policy, resolver)
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        _raise_for_status(response)
                        declared = int(response.headers.get("content-length") or 0)
                        if declared > max_bytes:
                            raise InvalidInput(f"source is {declared} bytes, over the {max_bytes}-byte cap")
                        await _stream_to(response, dest, max_bytes, declared, on_progress)
                        return dest
                raise InvalidInput(f"source URL redirected more than {MAX_REDIRECTS} times")
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise DependencyUnavailable(f"source download did not finish within {timeout:.0f} s") from None
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise DependencyUnavailable(f"source download failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code in (404, 410):
        raise SourceNotFound(f"source URL answered HTTP {code}")
    if 400 <= code < 500:
        raise InvalidInput(f"source URL answered HTTP {code}")
    if code >= 500:
        raise DependencyUnavailable(f"source URL answered HTTP {code}")


async def _stream_to(response: httpx.Response, dest: Path, max_bytes: int, declared: int,
                     on_progress: Callable[[int, int], None] | None) -> None:
    received = 0
    with open(dest, "wb") as out:
        async for chunk in response.aiter_bytes(1 << 20):
            received += len(chunk)
            if received > max_bytes:
                raise InvalidInput(f"source is over the {max_bytes}-byte cap")
            out.write(chunk)
            if on_progress is not None:
                on_progress(received, declared)
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class SourceLimits:
    """What a service accepts as a source: where from, how big, how long to download, how large a frame
    and how long a video (0: no cap)."""

    policy: SourcePolicy
    max_bytes: int
    timeout_seconds: float
    max_dimension: int = MAX_DIMENSION
    max_seconds: float = 0.0


async def fetch_source(url: str, dest: Path, limits: SourceLimits, reporter: ProgressReporter, *,
                       timeout: float | None = None, resolver: Resolver = resolve) -> MediaFacts:
    """A job's first stage: download under the guard and caps (progress in bytes), then probe once."""
    reporter.stage("fetch", unit="bytes", message="downloading the source")

    def received(done: int, declared: int) -> None:
        reporter.done, reporter.total = done, declared

    seconds = limits.timeout_seconds if timeout is None else min(timeout, limits.timeout_seconds)
    await fetch(url, dest, max_bytes=limits.max_bytes, timeout=seconds, policy=limits.policy,
                resolver=resolver, on_progress=received)
    reporter.stage("probe", message="reading the source")
    facts = await asyncio.to_thread(probe, dest, max_dimension=limits.max_dimension)
    if limits.max_seconds and facts.duration > limits.max_seconds:
        raise InvalidInput(f"source lasts {facts.duration:.1f} s, over the {limits.max_seconds:g} s cap")
    return facts
