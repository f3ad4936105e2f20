"""Parsing and normalisation, in process (the pool is tested in test_poll_store)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import canonical_link, entry_key, parse_feed, plain_text
from tests.feeds.conftest import fixture

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _parse(name: str, url: str = "https://host.example/feed") -> object:
    return parse_feed(fixture(name), url=url, fetched_at=NOW)


@pytest.mark.parametrize(
    ("name", "title", "language", "count"),
    [
        ("rss091.xml", "Old School Wire", "en", 2),
        ("rss10.rdf", "RDF Gazette", "de", 2),
        ("rss20.xml", "Daily Example", "en", 2),
        ("atom10.xml", "Le Journal Exemple", "fr", 2),
    ],
)
def test_every_format_parses(name: str, title: str, language: str, count: int) -> None:
    parsed = parse_feed(fixture(name), url="https://host.example/feed", fetched_at=NOW)
    assert (parsed.title, parsed.language, len(parsed.entries)) == (title, language, count)
    assert all(e.title and e.entry_key for e in parsed.entries)


def test_atom_entry_fields() -> None:
    parsed = parse_feed(
        fixture("atom10.xml"), url="https://journal.example/feed.xml", fetched_at=NOW
    )
    first, second = parsed.entries
    assert first.entry_key == "tag:journal.example,2026:port"
    assert first.link == "https://journal.example/articles/port"  # relative href resolved
    assert first.title == "Le port rouvre"
    assert (
        first.summary == "Le port rouvre après six mois de travaux. Les ferries reprennent lundi."
    )
    assert first.published_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert (first.author, first.tags, first.language) == ("Jeanne Exemple", ("économie",), "fr")
    assert second.language == "en"  # entry xml:lang beats the feed's


def test_rss10_dates_converted_to_utc() -> None:
    parsed = parse_feed(fixture("rss10.rdf"), url="http://rdf.example/", fetched_at=NOW)
    assert parsed.entries[0].published_at == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    assert parsed.entries[0].author == "Erika Muster"


def test_no_guids_fall_back_to_link_then_hash() -> None:
    parsed = parse_feed(fixture("no_guids.xml"), url="https://noguid.example/", fetched_at=NOW)
    first, second = parsed.entries
    assert first.entry_key == "https://noguid.example/one"
    assert second.entry_key.startswith("hash:")
    again = parse_feed(fixture("no_guids.xml"), url="https://noguid.example/", fetched_at=NOW)
    assert again.entries[1].entry_key == second.entry_key  # stable


def test_billion_laughs_is_not_expanded() -> None:
    parsed = parse_feed(fixture("billion_laughs.xml"), url="https://h.example/", fetched_at=NOW)
    [entry] = parsed.entries
    assert parsed.bozo
    assert entry.title == "&lol9;"
    assert len(entry.summary) < 50


def test_external_entity_is_not_read() -> None:
    parsed = parse_feed(fixture("external_entity.xml"), url="https://h.example/", fetched_at=NOW)
    assert parsed.entries[0].title == "before &xxe; after"


def test_bozo_without_entries_is_an_error() -> None:
    with pytest.raises(ParseError, match="not a usable feed"):
        parse_feed(fixture("not_a_feed.html"), url="https://h.example/", fetched_at=NOW)
    with pytest.raises(ParseError):
        parse_feed(b"\x00\x01garbage", url="https://h.example/", fetched_at=NOW)


def test_plain_text_strips_html() -> None:
    assert plain_text("<p>a&amp;b</p><p>c<br/>d</p>") == "a&b c d"
    assert plain_text("<script>x()</script><style>p{}</style>ok <!-- c -->!") == "ok !"
    assert plain_text("x <b>bold</b>y &lt;tag&gt; &#8212;\u00a0z\x00") == "x boldy <tag> — z"
    assert plain_text("1 < 2 and 3 > 2") == "1 < 2 and 3 > 2"
    assert plain_text(None) == ""


def test_plain_text_controls_cdata_and_comments_in_every_combination() -> None:
    """The shortcuts (no translate without a control character, no CDATA/comment pass without
    their opening) give what every pass gives."""
    assert plain_text("a\x01b\x7fc\x1bd\x0ce") == "a b c d e"
    assert plain_text("<![CDATA[<b>in</b>]]> out") == "in out"
    assert plain_text("<![CDATA[<!-- hidden -->]]>shown") == "shown"
    assert plain_text("a<!-- never closed") == "a"
    assert plain_text("plain ascii, no markup") == "plain ascii, no markup"


def test_canonical_link_drops_tracking() -> None:
    assert (
        canonical_link("HTTPS://Ex.ORG/a?utm_source=x&id=3&fbclid=y&gclid=z&mc_eid=1#frag")
        == "https://ex.org/a?id=3"
    )
    assert canonical_link("https://ex.org") == "https://ex.org/"
    assert canonical_link("mailto:x@y") == "mailto:x@y"


def test_entry_key_is_bounded() -> None:
    assert entry_key("g", "l", "t", "s") == "g"
    assert entry_key("", "l", "t", "s") == "l"
    assert entry_key("x" * 1000, "", "", "").startswith("sha256:")


@pytest.mark.parametrize(
    ("name", "in_range"),
    [
        (
            "dates_out_of_range.atom.xml",
            {
                "Bad published, good updated": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
                "In range": datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
            },
        ),
        ("dates_out_of_range.rss.xml", {"In range": datetime(2026, 11, 1, 12, 0, tzinfo=UTC)}),
    ],
)
@pytest.mark.parametrize("plain_rss", [True, False], ids=["fast-path", "feedparser"])
def test_out_of_range_dates_fall_back_to_the_fetch_time(
    name: str, in_range: dict[str, datetime], plain_rss: bool
) -> None:
    """Year 10000, 9999, 1, the epoch, month 13: each counts as missing, on every path."""
    parsed = parse_feed(
        fixture(name), url="https://odd.example/feed", fetched_at=NOW, plain_rss=plain_rss
    )
    dates = {e.title: e.published_at for e in parsed.entries}
    assert len(dates) > len(in_range)
    assert dates == {title: in_range.get(title, NOW) for title in dates}
