"""Feeds that misbehave, and many feeds that publish over time, on top of :class:`LocalServer`.

Used by the fault suite (``tests/faults``), the multi-worker test (``tests/scale``) and the
bench scripts (``bench/replay.py``, ``bench/soak.py``), so every one of them exercises the
daemon against the same real loopback server:

* :func:`rss` renders items as an RSS 2.0 document (every field XML-escaped);
* :class:`FeedFarm` serves many feeds whose items are released at their publication time on a
  clock the caller controls (an accelerated clock for a replay, a counter for tests), answers
  conditional GETs with 304, and counts requests per feed (so "polled once per interval" is
  measured at the server);
* :func:`sequence` answers a list of faulty replies in turn, then a good one, forever;
* the ``hostile_*`` builders produce the payloads a hostile feed server sends.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from tests.support.httpserver import Handler, LocalServer, Recorded, Reply

RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}


@dataclass(frozen=True)
class Item:
    """One feed entry as a server publishes it."""

    link: str
    title: str
    summary: str = ""
    published: datetime = field(default_factory=lambda: datetime.now(UTC))
    author: str = ""


def rss(
    items: Sequence[Item],
    *,
    title: str = "Test feed",
    link: str = "http://example.org/",
    language: str = "en",
    extra_item_xml: str = "",
) -> bytes:
    """An RSS 2.0 document with the items newest first; every text is XML-escaped."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link>",
        f"<description>{escape(title)}</description><language>{escape(language)}</language>",
    ]
    for item in sorted(items, key=lambda i: i.published, reverse=True):
        author = f"<author>{escape(item.author)}</author>" if item.author else ""
        parts.append(
            f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
            f'<guid isPermaLink="true">{escape(item.link)}</guid>'
            f"<description>{escape(item.summary)}</description>"
            f"<pubDate>{format_datetime(_aware(item.published), usegmt=True)}</pubDate>"
            f"{author}{extra_item_xml}</item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class FeedFarm:
    """Many RSS feeds on one server, each releasing its items when ``clock()`` passes them.

    ``empty_first``: the first request of each feed gets an empty channel, because the daemon
    stores a feed's first poll as history (never alerted); every item then arrives as new.
    ``window``: at most this many newest released items are served (a real feed's length).
    """

    def __init__(
        self,
        server: LocalServer,
        clock: Callable[[], datetime],
        *,
        empty_first: bool = True,
        window: int = 200,
    ) -> None:
        self.server, self.clock = server, clock
        self.empty_first, self.window = empty_first, window
        self.items: dict[str, list[Item]] = {}
        self.titles: dict[str, str] = {}
        self.polls: dict[str, int] = {}
        self.served: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def add_feed(self, path: str, items: Sequence[Item] = (), title: str = "") -> str:
        """Serve ``items`` at ``path`` (released over time); return the feed's URL."""
        with self._lock:
            self.items[path] = sorted(items, key=lambda i: _aware(i.published))
            self.titles[path] = title or path
            self.polls[path] = 0
            self.served[path] = set()
        self.server.route(path, self._handler(path))
        return self.server.url(path)

    def publish(self, path: str, item: Item) -> None:
        """Add an item to a feed while the daemon runs."""
        with self._lock:
            self.items[path].append(item)
            self.items[path].sort(key=lambda i: _aware(i.published))

    def released(self, path: str) -> list[Item]:
        now = _aware(self.clock())
        with self._lock:
            return [i for i in self.items[path] if _aware(i.published) <= now]

    def _handler(self, path: str) -> Handler:
        def handle(request: Recorded) -> Reply:
            with self._lock:
                self.polls[path] += 1
                first = self.polls[path] == 1
            items = [] if (first and self.empty_first) else self.released(path)[-self.window :]
            etag = (
                '"'
                + hashlib.sha256("|".join(i.link for i in items).encode()).hexdigest()[:16]
                + '"'
            )
            if not first and request.header("If-None-Match") == etag:
                return Reply(status=304, headers={"ETag": etag})
            with self._lock:
                self.served[path].update(i.link for i in items)
            body = rss(items, title=self.titles[path], link=self.server.url(path))
            return Reply(body=body, headers={**RSS_TYPE, "ETag": etag})

        return handle


def sequence(replies: Sequence[Reply], then: Reply | Handler) -> Handler:
    """Answer ``replies`` one per request, in order, then ``then`` for every later request."""
    queue: Iterator[Reply] = iter(list(replies))
    lock = threading.Lock()

    def handle(request: Recorded) -> Reply:
        with lock:
            reply = next(queue, None)
        if reply is not None:
            return reply
        return then(request) if callable(then) else then

    return handle


# -- hostile payloads ------------------------------------------------------------------------


def hostile_billion_laughs() -> bytes:
    """Nested entity expansion: a naive parser expands it to gigabytes."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE rss [", ' <!ENTITY lol "lol">']
    for level in range(1, 10):
        prev = f"lol{level - 1}" if level > 1 else "lol"
        lines.append(f' <!ENTITY lol{level} "{("&" + prev + ";") * 10}">')
    lines.append("]>")
    lines.append(
        '<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
        "<link>http://evil.example/laughs</link></item></channel></rss>"
    )
    return "\n".join(lines).encode()


def hostile_external_entity(target_path: str) -> bytes:
    """An external entity that tries to read a local file into an entry's title."""
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{target_path}">]>\n'
        '<rss version="2.0"><channel><title>xxe</title><item><title>&xxe;</title>'
        "<link>http://evil.example/xxe</link><description>&xxe;</description></item>"
        "</channel></rss>"
    ).encode()


def hostile_gzip_bomb(decoded_mb: int = 200) -> bytes:
    """A small gzip body (~200 KB) that decodes to ``decoded_mb`` MB of zeros."""
    chunk = b"\0" * (1024 * 1024)
    import io

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        for _ in range(decoded_mb):
            out.write(chunk)
    return buffer.getvalue()


def hostile_huge_body(total_mb: int = 100) -> Iterator[bytes]:
    """A streamed body of ``total_mb`` MB that starts like a feed and never ends it."""
    yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>huge</title>'
    filler = b"<item><title>" + b"x" * (1024 * 1024 - 30) + b"</title></item>"
    for _ in itertools.repeat(None, total_mb):
        yield filler


def hostile_invalid_encoding(good: Item) -> bytes:
    """Declares utf-8 but holds latin-1 bytes and a stray NUL; ``good`` must still be read."""
    body = rss([good], title="Caf\u00e9")
    return body.replace("Caf\u00e9".encode(), b"Caf\xe9 \xff\xfe\x00 bad")


def hostile_slow_author(good: Item) -> bytes:
    """An ``<author>`` built to make feedparser's backtracking e-mail regex take exponential
    time. ``xml:lang`` keeps the feed off the plain-RSS fast path (which never runs that regex),
    so it really reaches feedparser and its time limit."""
    evil = "a" * 5000 + "@" + "a." * 5000 + "!"
    body = rss([Item(good.link, good.title, good.summary, good.published, author=evil)])
    return body.replace(b"<channel>", b'<channel xml:lang="en">', 1)


class AlertReceiver:
    """A Slack-compatible endpoint: answers ``failures`` first (e.g. 429, 500), then 200 "ok".

    Only bodies answered 200 count as delivered; :meth:`delivered` counts how many accepted
    bodies mention each of the given links, so "exactly once" is measured at the receiver.
    """

    def __init__(
        self, server: LocalServer, path: str = "/slack", failures: Sequence[Reply] = ()
    ) -> None:
        self.accepted: list[bytes] = []
        self._lock = threading.Lock()
        self._failures = list(failures)
        self.url = server.url(path)
        server.route(path, self._handle)

    def fail_next(self, replies: Sequence[Reply]) -> None:
        with self._lock:
            self._failures.extend(replies)

    def _handle(self, request: Recorded) -> Reply:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            self.accepted.append(request.body)
        return Reply(body=b"ok", headers={"Content-Type": "text/plain"})

    def delivered(self, links: Sequence[str]) -> dict[str, int]:
        with self._lock:
            bodies = [b.decode("utf-8", "replace") for b in self.accepted]
        return {link: sum(link in body for body in bodies) for link in links}
