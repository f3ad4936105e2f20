"""Managing the feed list, shared by the CLI (`monitor feeds add|remove|import|export`) and the
web app's feeds page, so both add, disable, import and export the same way.

Each function works inside the caller's transaction and returns what happened as data; the
front ends turn it into a line of text, an exit code or a page.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from monitor.config import Config, PollingConfig, locate
from monitor.errors import MonitorError
from monitor.feeds.discover import discover
from monitor.feeds.opml import Subscription, SubscriptionList, read_opml, write_opml
from monitor.store import queries
from monitor.store.models import Feed

HTTP_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)


class FeedExists(MonitorError):
    """The feed is already stored and polled (a usage mistake: the CLI exits 2)."""


@dataclass(frozen=True)
class Added:
    """A feed added (or a removed one restored); ``found_on`` is the page it was found on."""

    id: int
    url: str
    restored: bool = False
    found_on: str = ""


def add_feed(
    session: Session,
    polling: PollingConfig,
    url: str,
    *,
    name: str = "",
    interval_s: float | None = None,
    find: bool = True,
) -> Added:
    """Add ``url`` (a feed, or with ``find`` a page advertising one), or poll a removed feed
    again. Raises :class:`FeedExists` for a feed already polled, FetchError / ParseError when
    discovery fails (nothing is stored then)."""
    url = url.strip()
    if not HTTP_URL.match(url):
        raise MonitorError(f'"{url}" is not an http(s) URL')
    known = _known(session, url)
    if known is not None:
        return known
    found_on = ""
    if find:
        found = discover(url, polling)
        if found != url:
            found_on, url = url, found
            known = _known(session, url)
            if known is not None:
                return Added(known.id, known.url, known.restored, found_on)
    feed = queries.add_feed(session, url, name=name.strip(), interval_s=interval_s)
    feed.next_poll_at = datetime.now(UTC)
    return Added(feed.id, feed.url, found_on=found_on)


def _known(session: Session, url: str) -> Added | None:
    """Restore a feed removed earlier (its history kept); refuse one already polled."""
    feed = queries.feed_by_url(session, url)
    if feed is None:
        return None
    if queries.is_removed(feed):
        queries.restore_feed(feed)
        return Added(feed.id, feed.url, restored=True)
    where = f"; it moved to {feed.redirect_url}" if feed.redirect_url else ""
    raise FeedExists(f"feed {feed.id} already exists: {feed.url}{where}")


def config_entry(config: Config, feed: Feed) -> str:
    """Where config.toml lists ``feed`` ("" when it does not): such a feed comes back on the
    next config sync, so it is removed by editing that file, not here."""
    for index, spec in enumerate(config.feeds):
        if spec.url == feed.url:
            return f"{locate(config, ('feeds', index, 'url'))} (feeds[{index}])"
    return ""


def disable_feed(session: Session, config: Config, key: str) -> queries.FeedRemoval:
    """Stop polling a feed, keeping its history (``feeds remove`` without --purge)."""
    feed = queries.find_feed(session, key)
    where = config_entry(config, feed)
    if where:
        raise MonitorError(
            f"feed {feed.id} is listed in {where}: delete that [[feeds]] entry to remove it"
        )
    return queries.remove_feed(session, str(feed.id))


@dataclass
class ImportReport:
    """What an import did, for its one-line summary."""

    added: list[Subscription] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return f"imported {len(self.added)} feeds" + (f"; skipped {reasons}" if reasons else "")


def plan_import(listing: SubscriptionList, stored: set[str]) -> ImportReport:
    """Which feeds to add: http(s) URLs not stored already. A feed listed twice in the file
    was merged by the reader (with both listings' categories); its repeats are counted."""
    report = ImportReport()
    if listing.repeats:
        report.skipped["listed twice"] = listing.repeats
    for sub in listing.subscriptions:
        if not HTTP_URL.match(sub.url):
            report.skipped["not http(s)"] += 1
        elif sub.url in stored:
            report.skipped["already stored"] += 1
        else:
            report.added.append(sub)
    return report


def read_list(data: bytes, source: str) -> SubscriptionList:
    """An OPML document's feeds; ParseError (one line naming ``source``) when malformed.
    Read before any database work, so a bad file changes nothing at all."""
    return read_opml(data, source)


def import_opml(session: Session, listing: SubscriptionList) -> ImportReport:
    """Add the feeds of a subscription list (categories become tags), skipping those stored."""
    report = plan_import(listing, {f.url for f in queries.list_feeds(session)})
    for sub in report.added:
        queries.add_feed(session, sub.url, name=sub.title, tags=sub.tags)
    return report


def export_opml(session: Session) -> tuple[bytes, int]:
    """Every stored feed as an OPML 2.0 document (tags as categories), and how many."""
    subs = [
        Subscription(
            url=f.url,
            title=f.name or f.title,
            tags=tuple(str(t) for t in f.tags or ()),
            site_url=f.site_url,
        )
        for f in queries.list_feeds(session)
    ]
    return write_opml(subs), len(subs)
