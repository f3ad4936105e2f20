"""Find the feed behind a web page: ``monitor feeds add https://site/`` just works.

The URL is fetched with the same polite, size-limited fetcher as polling. If the answer already
is a feed, its URL is kept; if it is an HTML page, the first
``<link rel="alternate" type="application/rss+xml|application/atom+xml" href=...>`` wins (RSS and
Atom equally, in page order), its ``href`` resolved against the page URL.
"""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from urllib.parse import urljoin

from monitor.config import PollingConfig
from monitor.domain import FeedRef, FetchResult
from monitor.errors import FetchError, ParseError
from monitor.feeds.fetch import Fetcher

FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
    }
)
_FEED_ROOTS = (b"<rss", b"<feed", b"<rdf:rdf", b"<rdf ")


class _AlternateLinks(HTMLParser):
    """Collects ``<link rel="alternate">`` feed hrefs; stops caring after ``<body>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("link", "a"):
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in FEED_TYPES and values.get("href"):
            self.hrefs.append(values["href"].strip())


def feed_links(html_text: str, base_url: str) -> list[str]:
    """Every feed URL a page advertises, absolute, in page order, without repeats."""
    parser = _AlternateLinks()
    parser.feed(html_text)
    parser.close()
    seen: dict[str, None] = {}
    for href in parser.hrefs:
        seen.setdefault(urljoin(base_url, href), None)
    return list(seen)


def looks_like_feed(body: bytes, content_type: str) -> bool:
    """True when the bytes are a feed rather than a page (by type, else by the root element)."""
    kind = content_type.lower().split(";")[0].strip()
    if kind in FEED_TYPES:
        return True
    head = body[:2048].lstrip().lower()
    return any(root in head for root in _FEED_ROOTS) and b"<html" not in head


def discover(url: str, config: PollingConfig) -> str:
    """The feed URL for ``url``: itself when it is a feed, else the page's advertised feed.

    Raises :class:`FetchError` when the page cannot be fetched and :class:`ParseError` when it
    advertises no feed.
    """
    result = asyncio.run(_fetch(url, config))
    if result.error or result.body is None:
        raise FetchError(
            f"cannot fetch {url}: {result.error or 'no body'}", url=url, status=result.status
        )
    final_url = result.final_url or url
    if looks_like_feed(result.body, result.content_type):
        return result.permanent_redirect_url or url
    text = result.body.decode("utf-8", "replace")
    links = feed_links(text, final_url)
    if not links:
        raise ParseError(
            f"{url} is neither a feed nor a page that links to one "
            '(no <link rel="alternate" type="application/rss+xml"> found)'
        )
    return links[0]


async def _fetch(url: str, config: PollingConfig) -> FetchResult:
    async with Fetcher(config) as fetcher:
        return await fetcher.fetch(FeedRef(id=0, url=url))
