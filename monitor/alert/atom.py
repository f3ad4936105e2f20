"""A topic's alerted matches as an Atom 1.0 feed (RFC 4287), for feed readers.

Built with :mod:`xml.etree.ElementTree`, which escapes ``&``, ``<`` and ``>`` in text and
attributes, so a hostile title stays text. Characters XML 1.0 cannot carry at all (C0 controls)
would make the whole feed unreadable, so every text goes through the same cleaning as alerts
(:func:`~monitor.alert.message.one_line`), and only http(s) links are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from monitor.alert.message import http_link, lead_of, multi_line, one_line

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"


def _stamp(when: datetime | None) -> str:
    """RFC 3339 in UTC; naive datetimes from SQLite are UTC already."""
    when = when or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tag_authority(base_url: str) -> str:
    return urlsplit(base_url).hostname or "monitor.invalid"


def _sub(parent: ET.Element, tag: str, text: str = "", **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text:
        element.text = text
    return element


def _summary(item: dict[str, Any]) -> str:
    lines = []
    if item.get("summary"):
        lines.append(lead_of(item["summary"]))
    if item.get("passage"):
        lines.append(f"Closest seed passage: {multi_line(item['passage'])}")
    if item.get("aliases"):
        lines.append("Aliases found: " + ", ".join(map(one_line, item["aliases"])))
    lines.append(f"Score {item['score']:.2f} \u00b7 match {item['match_id']}")
    return "\n\n".join(lines)


def _entry(feed: ET.Element, item: dict[str, Any], authority: str, fallback_link: str) -> None:
    entry = _sub(feed, "entry")
    _sub(entry, "id", f"tag:{authority},2026:match/{item['match_id']}")
    _sub(entry, "title", one_line(item["title"]) or "(untitled)", type="text")
    _sub(entry, "updated", _stamp(item["published"]))
    _sub(entry, "published", _stamp(item["published"]))
    _sub(entry, "link", rel="alternate", href=http_link(item["link"]) or fallback_link)
    author = _sub(entry, "author")
    _sub(author, "name", one_line(item["source"]) or "unknown")
    _sub(entry, "category", term=one_line(item["topic"]))
    _sub(entry, "summary", _summary(item), type="text")


def topic_feed(
    topic: str, items: Sequence[dict[str, Any]], *, self_url: str, site_url: str
) -> bytes:
    """The Atom document: ``items`` (newest first, as :func:`alerted_matches` gives them)."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    authority = _tag_authority(site_url)
    _sub(feed, "id", f"tag:{authority},2026:topic/{one_line(topic)}")
    _sub(feed, "title", f"monitor: {one_line(topic)}", type="text")
    _sub(feed, "subtitle", f"Articles that alerted topic {one_line(topic)}", type="text")
    _sub(feed, "updated", _stamp(items[0]["published"] if items else None))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=site_url)
    _sub(feed, "generator", "monitor")
    for item in items:
        _entry(feed, item, authority, site_url)
    xml: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return xml
