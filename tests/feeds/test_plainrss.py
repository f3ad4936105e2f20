"""The plain-RSS fast path gives exactly what feedparser gives, and declines what it cannot.

Each case parses the same bytes twice, through the fast path and through feedparser
(``plain_rss=False``), and compares the whole :class:`ParsedFeed`. A case marked ``fast``
must also really take the fast path, so a change that silently sends everything to
feedparser fails here too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.feeds.parse import parse_feed
from monitor.feeds.plainrss import read_plain_rss
from tests.feeds.conftest import FIXTURES, fixture

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RSS = "application/rss+xml"
NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:atom="http://www.w3.org/2005/Atom" '
    'xmlns:wire="http://wire.example/ns"'
)


def doc(items: str, channel: str = "", *, channel_attrs: str = "", decl: str = "utf-8") -> bytes:
    head = f'<?xml version="1.0" encoding="{decl}"?>\n' if decl else ""
    return (
        f'{head}<rss version="2.0" {NS}><channel{channel_attrs}>'
        f"<title>Harbour Wire</title><link>https://wire.example/</link>"
        f"<language>en-GB</language><ttl>30</ttl>{channel}{items}</channel></rss>"
    ).encode()


ITEM = (
    "<item><title>Ferry strike ends</title><link>https://wire.example/a/1</link>"
    "<guid>https://wire.example/a/1</guid><pubDate>Tue, 05 Sep 2023 10:00:00 +0200</pubDate>"
    "<description>&lt;p&gt;Crews return &amp;amp; sail.&lt;/p&gt;</description></item>"
)


def both(body: bytes, content_type: str = RSS) -> tuple[object, object]:
    fast = parse_feed(
        body, url="https://wire.example/feed", content_type=content_type, fetched_at=NOW
    )
    slow = parse_feed(
        body,
        url="https://wire.example/feed",
        content_type=content_type,
        fetched_at=NOW,
        plain_rss=False,
    )
    return fast, slow


FAST_CASES = {
    "basic": doc(ITEM),
    "entity-in-link": doc(
        "<item><title>Q</title><link>https://wire.example/a?id=2&amp;amp;ref=rss&amp;x;y</link>"
        '<guid isPermaLink="false">q-2</guid></item>'
    ),
    "permalink-guid-only": doc(
        "<item><title>G</title><guid> https://wire.example/g </guid></item>"
    ),
    "guid-then-link": doc(
        "<item><guid>https://wire.example/guid</guid><link>https://wire.example/link</link>"
        "<title>Order</title></item>"
    ),
    "link-then-guid": doc(
        "<item><link>https://wire.example/link</link><guid>https://wire.example/guid</guid>"
        "<title>Order</title></item>"
    ),
    "no-guid-no-link": doc(
        "<item><title>Only a title</title><description>Body</description></item>"
    ),
    "dublin-core-and-content": doc(
        "<item><title>DC</title><dc:creator> Jan Kowalski </dc:creator>"
        "<dc:date>2023-09-05T10:00:00Z</dc:date><dc:subject>port</dc:subject>"
        "<category domain='x'>ferries</category><category>  </category>"
        "<content:encoded><![CDATA[<p>The <b>long</b> story of the strike, told in full.</p>]]>"
        "</content:encoded><description>Short</description></item>"
    ),
    "mojibake-and-cp1252": doc(
        "<item><title>Caf\u00c3\u00a9 \u0093quoted\u0094</title>"
        "<author>desk@wire.example (Desk)</author><description>x</description></item>"
    ),
    "comment-and-cdata": doc(
        "<item><title>T <!-- hidden --> two</title><description><![CDATA[a & b]]> c</description>"
        "</item>"
    ),
    "media-and-unknown-elements": doc(
        "<item><title>M</title><media:group><media:content url='https://wire.example/v.mp4'>"
        "<media:credit>AP</media:credit></media:content>"
        "<media:thumbnail url='https://wire.example/t.jpg'/></media:group>"
        "<wire:priority>high</wire:priority><enclosure url='https://wire.example/a.mp3'/>"
        "<comments>https://wire.example/c</comments><description>d</description></item>"
    ),
    "channel-extras": doc(
        ITEM,
        "<atom:link rel='self' href='https://wire.example/feed'/><description>about</description>"
        "<image><title>Logo title</title><link>https://wire.example/</link>"
        "<url>https://wire.example/logo.png</url></image><lastBuildDate>Tue, 05 Sep 2023 "
        "10:00:00 GMT</lastBuildDate><wire:desk>north</wire:desk>",
    ),
    "future-and-bad-dates": doc(
        "<item><title>Later</title><guid>l-1</guid><pubDate>Fri, 01 Jan 2100 00:00:00 GMT"
        "</pubDate></item><item><title>Never</title><guid>l-2</guid><pubDate>soon</pubDate></item>"
    ),
    "no-declaration": doc(ITEM, decl=""),
}

FEEDPARSER_CASES = {
    "doctype": b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]>' + doc(ITEM)[39:],
    "xml-lang": doc(ITEM, channel_attrs=' xml:lang="pl"'),
    "latin-1": doc(ITEM, decl="iso-8859-1"),
    "two-titles": doc("<item><title>One</title><title>Two</title></item>"),
    "media-title": doc(
        "<item><title>T</title><media:content><media:title>Other</media:title></media:content>"
        "</item>"
    ),
    "media-description": doc(
        "<item><title>T</title><media:description>D</media:description></item>"
    ),
    "markup-in-title": doc("<item><title>A <b>bold</b> title</title></item>"),
    "atom-link-alternate": doc(ITEM, "<atom:link href='https://wire.example/other'/>"),
    "source": doc("<item><title>T</title><source url='https://x.example/'>X</source></item>"),
    "dc-language": doc("<item><title>T</title><dc:language>de</dc:language></item>"),
    "base-attribute": doc('<item base="https://elsewhere.example/"><title>T</title></item>'),
}


@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_fast_path_matches_feedparser(name: str) -> None:
    body = FAST_CASES[name]
    assert read_plain_rss(body, RSS) is not None, "expected the fast path to read this"
    fast, slow = both(body)
    assert fast == slow


@pytest.mark.parametrize("name", sorted(FEEDPARSER_CASES))
def test_what_the_fast_path_cannot_reproduce_goes_to_feedparser(name: str) -> None:
    body = FEEDPARSER_CASES[name]
    assert read_plain_rss(body, RSS) is None
    fast, slow = both(body)
    assert fast == slow


@pytest.mark.parametrize(
    ("content_type", "fast"),
    [
        ("application/rss+xml", True),
        ("application/xml; charset=UTF-8", True),
        ("text/xml; charset=utf-8", True),
        ("text/xml", False),  # RFC 3023: us-ascii; feedparser flags the feed as bozo
        ("text/html", False),
        ("application/rss+xml; charset=iso-8859-1", False),
    ],
)
def test_content_type_decides_too(content_type: str, fast: bool) -> None:
    body = FAST_CASES["basic"]
    assert (read_plain_rss(body, content_type) is not None) is fast
    first, second = both(body, content_type)
    assert first == second


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.xml")), ids=lambda p: p.name)
def test_every_fixture_feed_parses_the_same_both_ways(path: object) -> None:
    name = path.name  # type: ignore[attr-defined]
    body = fixture(name)
    try:
        slow = parse_feed(body, url="https://host.example/feed", fetched_at=NOW, plain_rss=False)
    except Exception as exc:  # an unusable document must be unusable on both paths
        with pytest.raises(type(exc)):
            parse_feed(body, url="https://host.example/feed", fetched_at=NOW)
        return
    assert parse_feed(body, url="https://host.example/feed", fetched_at=NOW) == slow


def test_fixtures_in_plain_rss_take_the_fast_path() -> None:
    for name in ("rss20.xml", "html_heavy.xml", "no_guids.xml", "duplicate_guids.xml"):
        assert read_plain_rss(fixture(name), RSS) is not None, name
    for name in ("atom10.xml", "rss10.rdf", "billion_laughs.xml", "external_entity.xml"):
        assert read_plain_rss(fixture(name), RSS) is None, name


def test_a_crafted_author_in_plain_rss_never_reaches_feedparsers_slow_regex() -> None:
    evil = "a" * 30_000 + "@" + "a." * 3_000 + "!"
    body = doc(f"<item><title>T</title><guid>e-1</guid><author>{evil}</author></item>")
    plain = read_plain_rss(body, RSS)
    assert plain is not None
    assert plain[1][0]["author"] == evil
