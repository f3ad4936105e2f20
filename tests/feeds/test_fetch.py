"""The fetcher on its own: encodings, size limits, redirects, validators, User-Agent."""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib

import pytest

from monitor.config import PollingConfig
from monitor.domain import FeedRef, FetchResult
from monitor.feeds import netguard
from monitor.feeds.fetch import Fetcher, host_key
from tests.feeds.conftest import RSS, fixture
from tests.support.httpserver import LocalServer, Recorded, Reply


def _fetch(url: str, **polling: object) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(PollingConfig(**polling)) as fetcher:  # type: ignore[arg-type]
            return await fetcher.fetch(FeedRef(id=1, url=url, etag='"e"'))

    return asyncio.run(run())


def test_gzip_and_both_deflate_forms_are_decoded(server: LocalServer) -> None:
    body = fixture("rss20.xml")
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw_deflate = raw.compress(body) + raw.flush()
    for path, data, encoding in [
        ("/gz", gzip.compress(body), "gzip"),
        ("/zlib", zlib.compress(body), "deflate"),
        ("/raw", raw_deflate, "deflate"),
    ]:
        server.route(path, Reply(body=data, headers={**RSS, "Content-Encoding": encoding}))
        result = _fetch(server.url(path))
        assert (result.error, result.body) == ("", body), path
    sent = server.requests_to("/gz")[0]
    assert sent.header("Accept-Encoding") == "gzip, deflate"
    assert sent.header("If-None-Match") == '"e"'
    assert sent.header("User-Agent").startswith("monitor/0.")


def test_limits_cut_off_bodies(server: LocalServer) -> None:
    server.route("/declared", Reply(body=b"x" * 5000))
    server.route(
        "/bomb", Reply(body=gzip.compress(b"\0" * 3_000_000), headers={"Content-Encoding": "gzip"})
    )
    server.route(
        "/corrupt", Reply(body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    )
    assert "over the limit" in _fetch(server.url("/declared"), max_body_bytes=4096).error
    assert "decompressed body passed" in _fetch(server.url("/bomb"), max_body_bytes=4096).error
    assert "cannot decompress" in _fetch(server.url("/corrupt")).error


def test_redirect_limit_and_schemes(server: LocalServer) -> None:
    for i in range(4):
        server.route(f"/r{i}", Reply(status=302, headers={"Location": f"/r{i + 1}"}))
    server.route("/r4", Reply(body=fixture("rss20.xml"), headers=RSS))
    server.route("/file", Reply(status=301, headers={"Location": "file:///etc/passwd"}))
    assert _fetch(server.url("/r0"), max_redirects=4).status == 200
    assert "more than 3 redirects" in _fetch(server.url("/r0"), max_redirects=3).error
    assert "non-http" in _fetch(server.url("/file")).error
    ok = _fetch(server.url("/r0"), max_redirects=4)
    assert ok.final_url == server.url("/r4")
    assert ok.permanent_redirect_url is None


def test_total_timeout_bounds_a_trickling_body(server: LocalServer) -> None:
    server.route("/trickle", Reply(body=(b"<" for _ in range(100)), chunk_delay_s=0.05))
    result = _fetch(server.url("/trickle"), total_timeout=1.0, read_timeout=5.0)
    assert "total timeout" in result.error
    assert result.body is None


def test_per_host_limit_is_per_server_scheme_host_and_port(server: LocalServer) -> None:
    """Two slow feeds fill the slots of their server (per_host=2), not of every port on the
    same host: a feed of a second server on another port is fetched at once."""
    server.route("/slow", Reply(body=fixture("rss20.xml"), headers=RSS, delay_s=1.5))
    finished: list[str] = []

    async def fetch(fetcher: Fetcher, name: str, url: str) -> None:
        result = await fetcher.fetch(FeedRef(id=1, url=url))
        assert result.error == "", (name, result.error)
        finished.append(name)

    async def run(other: LocalServer) -> None:
        other.route("/fast", Reply(body=fixture("rss20.xml"), headers=RSS))
        async with Fetcher(PollingConfig(per_host=2)) as fetcher:
            await asyncio.gather(
                fetch(fetcher, "slow-1", server.url("/slow?1")),
                fetch(fetcher, "slow-2", server.url("/slow?2")),
                fetch(fetcher, "other port", other.url("/fast")),
            )

    with LocalServer() as other:
        assert other.port != server.port
        asyncio.run(run(other))
    assert finished[0] == "other port", finished


def test_feeds_queued_behind_their_busy_server_leave_global_slots_to_others(
    server: LocalServer,
) -> None:
    """concurrency=2, per_host=1: three feeds of server A then one of server B. A's first
    answer is held until B has been asked (or 10 s pass). With the global slot taken before
    the server's, A's second feed sat on the other global slot waiting for A, and B waited
    for A's first feed to end: the gate timed out."""
    b_asked = threading.Event()
    gate_opened: list[bool] = []

    def held(_request: Recorded) -> Reply:
        gate_opened.append(b_asked.wait(timeout=10))
        return Reply(body=fixture("rss20.xml"), headers=RSS)

    def answer_b(_request: Recorded) -> Reply:
        b_asked.set()
        return Reply(body=fixture("rss20.xml"), headers=RSS)

    server.route("/a", held)

    async def run(other: LocalServer) -> list[FetchResult]:
        other.route("/b", answer_b)
        urls = [server.url("/a?1"), server.url("/a?2"), server.url("/a?3"), other.url("/b")]
        async with Fetcher(PollingConfig(concurrency=2, per_host=1)) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(FeedRef(id=1, url=u)) for u in urls))

    with LocalServer() as other:
        results = asyncio.run(run(other))
    assert [r.error for r in results] == ["", "", "", ""]
    assert gate_opened[0] is True, "server B waited for server A's queue"


def test_host_key_names_scheme_host_and_port() -> None:
    assert host_key("http://Example.org/rss") == host_key("http://example.org:80/x")
    assert host_key("https://example.org/rss") == "https://example.org:443"
    assert host_key("http://example.org:8080/rss") != host_key("http://example.org:8081/rss")
    assert host_key("http://example.org/rss") != host_key("https://example.org/rss")


def test_private_addresses_are_refused_when_not_allowed(server: LocalServer) -> None:
    server.route("/rss", Reply(body=fixture("rss20.xml"), headers=RSS))
    assert _fetch(server.url("/rss")).error == ""  # the default: a self-hosted reader's network
    for url in (server.url("/rss"), f"http://localhost:{server.port}/rss"):
        result = _fetch(url, allow_private_addresses=False)
        assert result.body is None
        assert result.error.startswith("refused: "), result.error
        assert "127.0.0.1" in result.error or "::1" in result.error
        assert "allow_private_addresses" in result.error
    assert len(server.requests_to("/rss")) == 1  # the refused fetches never connected


def test_a_redirect_to_a_private_address_is_refused(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 stands in for a public server (the policy is told so); it redirects to a
    server on 127.0.0.2, which the policy judges as it is: loopback, refused."""
    real = netguard.is_public
    monkeypatch.setattr(netguard, "is_public", lambda a: a == "127.0.0.1" or real(a))
    with LocalServer(host="127.0.0.2") as internal:
        internal.route("/secret", Reply(body=fixture("rss20.xml"), headers=RSS))
        target = f"http://127.0.0.2:{internal.port}/secret"
        server.route("/hop", Reply(status=302, headers={"Location": target}))
        result = _fetch(server.url("/hop"), allow_private_addresses=False)
        assert result.error.startswith("refused: 127.0.0.2 is at 127.0.0.2"), result.error
        assert internal.requests == []
        assert _fetch(server.url("/hop")).error == ""  # allowed by default


def test_the_address_connected_to_is_checked_too(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name looked public when it was checked, the connect reached
    loopback. The answer is refused before its body is read."""

    async def looked_public(_url: str) -> None:
        return None

    monkeypatch.setattr(netguard, "require_public_host", looked_public)
    server.route("/rss", Reply(body=fixture("rss20.xml"), headers=RSS))
    result = _fetch(server.url("/rss"), allow_private_addresses=False)
    assert (result.body, result.error.startswith("refused: ")) == (None, True), result.error


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_address_classification(address: str, public: bool) -> None:
    assert netguard.is_public(address) is public
