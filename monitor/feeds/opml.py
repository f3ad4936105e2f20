"""OPML subscription lists in and out (`monitor feeds import|export`).

Reading is two steps. listparser reads OPML the way feed readers write it (folders as nested
outlines, the OPML 2.0 ``category`` attribute, ``title`` or ``text``), but it is lenient by
design: a truncated or broken file still yields the feeds before the break, and it reports no
error. An import that half-happens is worse than none, so the file is first parsed strictly
with defusedxml (which also refuses DTDs and entity tricks): a malformed file fails as a whole,
with the line, and nothing is imported.

Categories become tags: a folder path or a ``/News/Asia`` category becomes the tag
``News/Asia``. Writing puts each feed in a folder named after its first tag and lists every tag
in ``category``, so folder-minded readers and a round trip through monitor both keep them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import listparser
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from monitor.errors import ParseError


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed of a subscription list."""

    url: str
    title: str = ""
    tags: tuple[str, ...] = ()
    site_url: str = ""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _strict_root(data: bytes, source: str) -> ET.Element:
    """The document element, or one ParseError naming the file and line."""
    try:
        root: ET.Element = SafeET.fromstring(data)  # defusedxml is untyped
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        reason = str(exc).split(":")[0]
        raise ParseError(
            f"{source}:{line}: not well-formed XML ({reason}); nothing imported"
        ) from None
    except DefusedXmlException:
        raise ParseError(
            f"{source}: refused: OPML must not declare a DTD or entities; nothing imported"
        ) from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag.lower() != "opml":
        raise ParseError(
            f"{source}: not an OPML file (its root element is <{tag}>); nothing imported"
        )
    return root


@dataclass(frozen=True, slots=True)
class SubscriptionList:
    """The feeds of one OPML file, each once, and how many outlines repeated a feed."""

    subscriptions: tuple[Subscription, ...]
    repeats: int = 0


def _feed_urls(root: ET.Element) -> list[str]:
    """Every feed outline's xmlUrl, repeats included (listparser merges them)."""
    urls = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1].lower() != "outline":
            continue
        attrs = {k.lower(): v for k, v in element.attrib.items()}
        if "xmlurl" in attrs and attrs.get("type", "").strip().lower() != "source":
            urls.append(attrs["xmlurl"].strip())
    return urls


def read_opml(data: bytes, source: str) -> SubscriptionList:
    """Every feed of an OPML document, once each in file order; a feed listed in several
    places is counted in ``repeats`` and keeps the categories of every listing. Raises
    ParseError for a file that is not well-formed OPML."""
    root = _strict_root(data, source)
    # re-serialised: always UTF-8 for listparser, whatever the file declared
    parsed = listparser.parse(ET.tostring(root, encoding="utf-8"))
    if parsed.bozo:
        raise ParseError(f"{source}: unreadable OPML ({parsed.bozo_exception}); nothing imported")
    subs = tuple(
        Subscription(
            url=str(feed.url).strip(),
            title=" ".join(str(feed.get("title", "")).split()),
            tags=_unique("/".join(part.strip() for part in path) for path in feed.categories),
        )
        for feed in parsed.feeds
    )
    urls = [u for u in _feed_urls(root) if u]
    return SubscriptionList(subs, repeats=max(0, len(urls) - len(set(urls))))


def _category(tags: Sequence[str]) -> str:
    # a comma separates categories in OPML 2.0, so one inside a tag becomes a space
    return ",".join("/" + " ".join(t.replace(",", " ").split()).strip("/") for t in tags)


def _outline(parent: ET.Element, sub: Subscription) -> None:
    attrs = {"type": "rss", "text": sub.title or sub.url, "title": sub.title or sub.url}
    attrs["xmlUrl"] = sub.url
    if sub.site_url:
        attrs["htmlUrl"] = sub.site_url
    if sub.tags:
        attrs["category"] = _category(sub.tags)
    ET.SubElement(parent, "outline", attrs)


def write_opml(subscriptions: Sequence[Subscription], title: str = "monitor feeds") -> bytes:
    """An OPML 2.0 document: feeds without tags at the top, the rest in a folder named after
    their first tag, every tag also in ``category``."""
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for sub in subscriptions:
        parent = body
        if sub.tags:
            name = sub.tags[0]
            if name not in folders:
                folders[name] = ET.SubElement(body, "outline", {"text": name, "title": name})
            parent = folders[name]
        _outline(parent, sub)
    ET.indent(root)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"
