"""HTTP fetching of feeds with httpx: polite, bounded, and never raising for a bad feed.

What one :meth:`Fetcher.fetch` does, in order:

* waits for a slot for the feed's server (``polling.per_host``, keyed on scheme, host and
  port), then for a global slot (``polling.concurrency``), so thousands of feeds never hammer
  one server and a crowd of feeds on one server never holds the slots every other server needs;
* sends a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the stored validators)
  with our User-Agent; a 304 costs one round trip and no body;
* with ``polling.allow_private_addresses = false``, refuses any hop whose host is or resolves
  to a loopback, private or link-local address (:mod:`monitor.feeds.netguard`);
* follows redirects itself, up to ``polling.max_redirects``, refusing loops and non-http schemes;
  when every hop was permanent (301/308) the final URL is reported so the stored URL moves;
* streams the body and stops as soon as its *decoded* size passes ``polling.max_body_bytes``;
  gzip/deflate are inflated here with zlib's ``max_length`` rather than by httpx (which inflates
  each network chunk whole), so a 2 GB response or a gzip bomb is cut off without ever holding
  more than the limit in memory;
* bounds connect and read time (httpx timeouts) and the whole fetch (``polling.total_timeout``).

Every outcome, good or bad, is a :class:`monitor.domain.FetchResult`; errors are data
(``result.error``), because one broken feed must never stop the others.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import urlsplit

import httpx

from monitor import __version__, metrics
from monitor.config import PollingConfig
from monitor.domain import FeedRef, FetchResult
from monitor.errors import FetchError, FetchTimeout, ResponseTooLarge, TooManyRedirects
from monitor.feeds import netguard
from monitor.http_headers import parse_retry_after

PROJECT_URL = "https://github.com/monitor-news/monitor"
DEFAULT_USER_AGENT = f"monitor/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.1"
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_STATUSES = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE_RE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\b", re.IGNORECASE)


def user_agent(config: PollingConfig) -> str:
    """The configured User-Agent, else ``monitor/<version> (+project URL)``."""
    return config.user_agent or DEFAULT_USER_AGENT


def parse_max_age(value: str | None) -> float | None:
    """``Cache-Control: max-age`` in seconds; None when absent or when caching is refused."""
    if not value or _NO_CACHE_RE.search(value):
        return None
    match = _MAX_AGE_RE.search(value)
    return float(match.group(1)) if match else None


DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """What ``polling.per_host`` limits: scheme, host and port (``https://example.org:443``).

    Two servers on one host name but different ports are different servers: keyed on the host
    alone, two slow feeds on one port held back every feed of the other ports."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port out of range: the fetch itself reports it
        port = 0
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


class Fetcher:
    """One shared httpx client plus the global and per-host limits. Use ``async with``."""

    def __init__(self, config: PollingConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self._global = asyncio.Semaphore(config.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Fetcher:
        cfg = self.config
        timeout = httpx.Timeout(
            connect=cfg.connect_timeout,
            read=cfg.read_timeout,
            write=cfg.read_timeout,
            pool=cfg.total_timeout,
        )
        # No keep-alive pool: feeds on one host are polled minutes apart, so idle connections
        # are rarely reused, and httpcore checks every idle connection on each request
        # (measured: the pool bookkeeping cost more CPU than the connects it saved).
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=0)
        self._client = httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            transport=self._transport,
            # only encodings we inflate with a size bound ourselves (no br/zstd)
            headers={
                "User-Agent": user_agent(cfg),
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        """The server's slot first, then a global one: a fetch queued behind its busy server
        holds no global slot, so many feeds of one server cannot starve every other server
        (taken the other way round, 30 of 32 global slots sat waiting on one host's 2)."""
        per_host = self._hosts.get(key := host_key(url))
        if per_host is None:
            per_host = self._hosts[key] = asyncio.Semaphore(self.config.per_host)
        async with per_host, self._global:
            yield

    async def fetch(
        self, feed: FeedRef, *, should_stop: Callable[[], bool] | None = None
    ) -> FetchResult:
        """Fetch one feed; never raises for anything the feed or its server does.

        ``should_stop`` is asked once a slot is free: when it says yes the feed is not fetched
        and the result is ``skipped`` (a shutdown must not start hundreds of queued fetches)."""
        async with self._slot(feed.url):
            if should_stop is not None and should_stop():
                return FetchResult(url=feed.url, status=None, error="stopped", skipped=True)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.config.total_timeout):
                    result = await self._fetch(feed)
            except TimeoutError:
                result = _failure(
                    feed.url,
                    FetchTimeout(
                        f"no complete answer within {self.config.total_timeout:g}s (total timeout)"
                    ),
                )
            except FetchError as exc:
                result = _failure(feed.url, exc)
            except httpx.TimeoutException as exc:
                result = _failure(feed.url, FetchTimeout(f"timeout: {_describe(exc)}"))
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as exc:
                result = _failure(feed.url, FetchError(_describe(exc)))
            elapsed = time.monotonic() - started
            metrics.FETCH_SECONDS.observe(elapsed)
            return _with_elapsed(result, elapsed)

    async def _fetch(self, feed: FeedRef) -> FetchResult:
        assert self._client is not None, "use Fetcher as an async context manager"
        url, visited, permanent_url, all_permanent = feed.url, [feed.url], None, True
        headers = _conditional_headers(feed)
        guard = not self.config.allow_private_addresses
        for _hop in range(self.config.max_redirects + 1):
            if guard:  # every hop: a public feed may redirect to an internal address
                await netguard.require_public_host(url)
            request = self._client.build_request("GET", url, headers=headers)
            response = await self._client.send(request, stream=True)
            try:
                if guard:
                    netguard.require_public_peer(url, response.extensions)
                if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                    url = _next_url(response, visited)
                    all_permanent = all_permanent and response.status_code in PERMANENT_STATUSES
                    permanent_url = url if all_permanent else permanent_url
                    continue
                return await self._finish(feed, response, url, permanent_url)
            finally:
                await response.aclose()
        raise TooManyRedirects(f"more than {self.config.max_redirects} redirects", url=feed.url)

    async def _finish(
        self, feed: FeedRef, response: httpx.Response, url: str, permanent_url: str | None
    ) -> FetchResult:
        status, headers = response.status_code, response.headers
        common = {
            "url": feed.url,
            "status": status,
            "final_url": url,
            "permanent_redirect_url": permanent_url,
            "content_type": headers.get("content-type", ""),
        }
        if status == 304:
            return FetchResult(
                **common,
                etag=feed.etag,
                last_modified=feed.last_modified,
                max_age_s=parse_max_age(headers.get("cache-control")),
            )
        if status >= 400 or status < 200:
            reason = f"HTTP {status} {response.reason_phrase}".strip()
            retry = (
                parse_retry_after(headers.get("retry-after"))
                if status in RETRY_AFTER_STATUSES
                else None
            )
            return FetchResult(**common, error=reason, retry_after_s=retry, gone=status == 410)
        body = await self._read_body(response)
        return FetchResult(
            **common,
            body=body,
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            max_age_s=parse_max_age(headers.get("cache-control")),
        )

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self.config.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(
                f"body of {int(declared)} bytes is over the limit of {limit} bytes"
            )
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return await _inflate_bounded(response, limit, raw_deflate_ok=encoding == "deflate")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():  # identity (we only accept gzip/deflate)
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"body passed the limit of {limit} bytes (cut off)")
            chunks.append(chunk)
        return b"".join(chunks)


async def _inflate_bounded(response: httpx.Response, limit: int, *, raw_deflate_ok: bool) -> bytes:
    """Decompress gzip/deflate ourselves with ``max_length``, so no step ever holds more than
    ``limit + 1`` decoded bytes: httpx's own decoder would inflate each network chunk whole
    (64 KB of a gzip bomb is 64 MB), before we could count it."""
    decoder = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    chunks: list[bytes] = []
    size, first = 0, True
    async for raw in response.aiter_raw():
        data = raw
        while data:
            try:
                out = decoder.decompress(data, limit - size + 1)
            except zlib.error as exc:
                if not (first and raw_deflate_ok):
                    raise FetchError(f"cannot decompress the body: {exc}") from None
                decoder, first = zlib.decompressobj(wbits=-15), False  # raw deflate stream
                continue
            first = False
            size += len(out)
            if size > limit:
                raise ResponseTooLarge(
                    f"decompressed body passed the limit of {limit} bytes (cut off)"
                )
            chunks.append(out)
            data = decoder.unconsumed_tail
            if decoder.eof:
                break
    return b"".join(chunks)


def _conditional_headers(feed: FeedRef) -> dict[str, str]:
    headers = {}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    return headers


def _next_url(response: httpx.Response, visited: list[str]) -> str:
    """The redirect target, refusing loops and schemes other than http(s)."""
    target = str(response.url.join(response.headers["location"]))
    if urlsplit(target).scheme not in ("http", "https"):
        raise FetchError(f"redirect to a non-http URL refused: {target[:200]}")
    if target in visited:
        raise TooManyRedirects(f"redirect loop back to {target[:200]}")
    visited.append(target)
    return target


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _failure(url: str, exc: FetchError) -> FetchResult:
    return FetchResult(
        url=url,
        status=exc.status,
        error=str(exc) or type(exc).__name__,
        too_large=isinstance(exc, ResponseTooLarge),
    )


def _with_elapsed(result: FetchResult, elapsed: float) -> FetchResult:
    return replace(result, elapsed_s=elapsed)
