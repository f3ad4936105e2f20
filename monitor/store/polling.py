"""The polling stage's SQL: claim due feeds under a lease, record results, insert articles.

Claiming: a feed is due when it is enabled, its ``next_poll_at`` has come and nobody holds an
unexpired lease on it. On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP LOCKED``, so
workers claiming at the same moment get disjoint feeds without waiting on each other; on SQLite
(one writer at a time) the conditional ``UPDATE`` re-checks the lease itself. A worker that dies
leaves a lease that simply expires (``database.lease``) and the feed becomes claimable again.

Articles: inserted in one multi-row statement per feed, ``ON CONFLICT DO NOTHING`` on
(feed_id, entry_key) so a repeat is harmless; entries whose canonical link is already stored
(from this or another feed) are skipped, so one story syndicated by two feeds is stored once.

Cost at 10,000 feeds: the polling stage writes the results of up to 100 feeds in one
transaction. Everything here that runs per feed is Core SQL (no ORM loads, no unit of work):
the canonical links of a whole batch are checked in one query, the feed rows of plain
successes and of 304s are updated by one executemany each. Only the rare outcomes (errors,
redirects, ``410 Gone``) load the ORM row (:func:`record_outcome`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.domain import Entry, FeedRef
from monitor.store import db
from monitor.store.models import Article, ArticleBody, Feed

MAX_ERROR_CHARS = 1000


def claim_due(
    session: Session,
    owner: str,
    *,
    now: datetime,
    lease_s: float,
    limit: int = 500,
    due_before: datetime | None = None,
) -> list[FeedRef]:
    """Lease up to ``limit`` due feeds to ``owner`` (oldest due first); commit is the caller's.

    ``due_before`` (default ``now``) lets one polling run take only what was due when it
    started, so a feed rescheduled a minute ahead is not polled twice in one long run."""
    claimable = and_(
        Feed.enabled.is_(True),
        Feed.next_poll_at <= (due_before or now),
        or_(Feed.lease_until.is_(None), Feed.lease_until < now),
    )
    until = now + timedelta(seconds=lease_s)
    order = (Feed.next_poll_at, Feed.id)
    ids = db.lease(session, Feed.id, claimable, order, limit=limit, owner=owner, until=until)
    if not ids:
        return []
    rows = session.execute(
        select(
            Feed.id,
            Feed.url,
            Feed.redirect_url,
            Feed.etag,
            Feed.last_modified,
            Feed.interval_s,
            Feed.consecutive_errors,
            Feed.first_success_at,
            Feed.language,
            Feed.ttl_s,
            Feed.full_text,
        )
        .where(Feed.id.in_(ids), Feed.lease_owner == owner, Feed.lease_until == until)
        .order_by(Feed.next_poll_at, Feed.id)
    )
    return [
        FeedRef(
            id=r.id,
            url=r.redirect_url or r.url,  # fetched where a permanent redirect pointed
            etag=r.etag,
            last_modified=r.last_modified,
            interval_s=r.interval_s,
            consecutive_errors=r.consecutive_errors or 0,
            has_succeeded=r.first_success_at is not None,
            ttl_s=r.ttl_s,
            language=r.language or "",
            full_text=bool(r.full_text),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """Everything one poll changes on a feed row (computed by the pipeline)."""

    now: datetime
    status: int | None
    next_poll_at: datetime
    error: str = ""
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    ttl_s: float | None = None
    new_url: str | None = None  # where every hop of a redirect was permanent (301/308)
    gone: bool = False
    title: str = ""
    site_url: str = ""
    language: str = ""


def record_outcome(session: Session, feed_id: int, owner: str, outcome: PollOutcome) -> None:
    """Write one poll's result on the feed row and release the lease."""
    feed = session.get(Feed, feed_id)
    if feed is None:  # removed while we were polling it
        return
    feed.last_polled_at, feed.last_status = outcome.now, outcome.status
    feed.next_poll_at = outcome.next_poll_at
    if feed.lease_owner == owner:
        feed.lease_owner, feed.lease_until = None, None
    if outcome.error:
        _record_error(feed, outcome)
    else:
        _record_success(feed, outcome)


def record_not_modified_many(
    session: Session, owner: str, items: Sequence[tuple[int, PollOutcome]]
) -> None:
    """Record many ``304 Not Modified`` polls in one executemany UPDATE.

    The cheap path of a cycle where most feeds are unchanged: no row is loaded, only the
    scheduling columns change (a 304 is a success: the error streak ends)."""
    if not items:
        return
    table = Feed.metadata.tables["feeds"]
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            last_polled_at=bindparam("b_now", type_=Feed.last_polled_at.type),
            last_success_at=bindparam("b_now", type_=Feed.last_polled_at.type),
            first_success_at=func.coalesce(
                table.c.first_success_at, bindparam("b_now", type_=Feed.last_polled_at.type)
            ),
            last_status=bindparam("b_status"),
            next_poll_at=bindparam("b_next", type_=Feed.next_poll_at.type),
            consecutive_errors=0,
            last_error="",
            failing_since=None,
            health_alerted_at=None,
            **_release_lease(table, owner),
        )
    )
    session.execute(
        statement,
        [
            {"b_id": feed_id, "b_now": o.now, "b_status": o.status, "b_next": o.next_poll_at}
            for feed_id, o in items
        ],
    )


def _release_lease(table: Any, owner: str) -> dict[str, Any]:
    """Column values that give back ``owner``'s lease and leave anyone else's alone."""
    return {
        "lease_owner": case((table.c.lease_owner == owner, None), else_=table.c.lease_owner),
        "lease_until": case((table.c.lease_owner == owner, None), else_=table.c.lease_until),
    }


def record_success_many(
    session: Session, owner: str, items: Sequence[tuple[int, PollOutcome]]
) -> None:
    """Record many successful polls (a body was fetched and parsed) in one executemany UPDATE.

    The same columns :func:`record_outcome` sets for a success without a redirect, without
    loading any row: the validators, TTL, the error streak reset; ``title``/``site_url`` only
    when the feed said them, ``language`` only when the row has none yet."""
    if not items:
        return
    table = Feed.metadata.tables["feeds"]
    when = Feed.last_polled_at.type
    title, site, lang = (
        bindparam(name, type_=String()) for name in ("b_title", "b_site", "b_lang")
    )
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            last_polled_at=bindparam("b_now", type_=when),
            last_success_at=bindparam("b_now", type_=when),
            first_success_at=func.coalesce(
                table.c.first_success_at, bindparam("b_now", type_=when)
            ),
            last_status=bindparam("b_status"),
            next_poll_at=bindparam("b_next", type_=Feed.next_poll_at.type),
            consecutive_errors=0,
            last_error="",
            failing_since=None,
            health_alerted_at=None,
            etag=bindparam("b_etag"),
            last_modified=bindparam("b_modified"),
            ttl_s=bindparam("b_ttl"),
            title=case((title != "", title), else_=table.c.title),
            site_url=case((site != "", site), else_=table.c.site_url),
            language=case(
                (and_(lang != "", func.coalesce(table.c.language, "") == ""), lang),
                else_=table.c.language,
            ),
            **_release_lease(table, owner),
        )
    )
    session.execute(
        statement,
        [
            {
                "b_id": feed_id,
                "b_now": o.now,
                "b_status": o.status,
                "b_next": o.next_poll_at,
                "b_etag": o.etag,
                "b_modified": o.last_modified,
                "b_ttl": o.ttl_s,
                "b_title": o.title[:1024],
                "b_site": o.site_url[:2048],
                "b_lang": o.language[:16],
            }
            for feed_id, o in items
        ],
    )


def _record_error(feed: Feed, outcome: PollOutcome) -> None:
    feed.consecutive_errors = (feed.consecutive_errors or 0) + 1
    feed.last_error = outcome.error[:MAX_ERROR_CHARS]
    feed.failing_since = feed.failing_since or outcome.now
    if outcome.gone:
        feed.enabled = False
        feed.disabled_reason = f"the server says the feed is gone ({outcome.error})"[
            :MAX_ERROR_CHARS
        ]


def _record_success(feed: Feed, outcome: PollOutcome) -> None:
    feed.consecutive_errors, feed.last_error, feed.failing_since = 0, "", None
    feed.health_alerted_at = None
    feed.last_success_at = outcome.now
    feed.first_success_at = feed.first_success_at or outcome.now
    if outcome.new_url:
        _record_redirect(feed, outcome.new_url)
    if outcome.not_modified:
        return
    feed.etag, feed.last_modified = outcome.etag, outcome.last_modified
    feed.ttl_s = outcome.ttl_s
    if outcome.title:
        feed.title = outcome.title[:1024]
    if outcome.site_url:
        feed.site_url = outcome.site_url[:2048]
    if outcome.language and not feed.language:
        feed.language = outcome.language[:16]


def _record_redirect(feed: Feed, new_url: str) -> None:
    """Poll from ``new_url`` from now on; ``url`` stays the feed's identity, so the next config
    sync still finds this row instead of adding the old URL as a second feed."""
    feed.redirect_url = None if new_url == feed.url else new_url[:2048]


@dataclass(frozen=True, slots=True)
class FeedEntries:
    """One feed's parsed entries, to be stored by :func:`store_entries_many`."""

    feed_id: int
    entries: Sequence[Entry]
    is_history: bool
    fetched_at: datetime
    full_text: bool = False
    # the caller knows the feed has no stored article yet (its first successful poll): the
    # per-feed key lookup is skipped (ON CONFLICT still refuses a duplicate key); at 10,000
    # newly imported feeds that lookup was ~8% of the main process's CPU
    known_empty: bool = False


def store_entries(
    session: Session,
    feed_id: int,
    entries: Sequence[Entry],
    *,
    is_history: bool,
    fetched_at: datetime,
    detect_language: Callable[[str], str] | None = None,
    full_text: bool = False,
) -> int:
    """Insert one feed's entries not stored yet; return how many rows were inserted."""
    item = FeedEntries(feed_id, entries, is_history, fetched_at, full_text)
    return store_entries_many(session, [item], detect_language=detect_language)[0]


def store_entries_many(
    session: Session,
    items: Sequence[FeedEntries],
    *,
    detect_language: Callable[[str], str] | None = None,
) -> list[int]:
    """Insert the entries of several feeds not stored yet; how many rows each feed inserted.

    ``detect_language`` (title + summary -> code) fills in the language of entries whose feed
    left it open; it runs only on entries about to be inserted, never on ones already stored.
    With ``full_text``, each new non-history article with a link gets a ``pending``
    :class:`ArticleBody` in the same transaction (history is never fetched page by page).
    The canonical links of all ``items`` are looked up in one query; a link stored by an
    earlier item of the same call counts as stored for the later ones."""
    links = {_link(e) for item in items for e in item.entries if e.canonical_link}
    seen_links = _known_links(session, links)
    insert_fn: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert_fn(Article.__table__).on_conflict_do_nothing(
        index_elements=["feed_id", "entry_key"]
    )
    counts = []
    for item in items:
        fresh = _unseen(session, item, seen_links)
        counts.append(_insert(session, statement, item, fresh, detect_language))
    return counts


def _insert(
    session: Session,
    statement: Any,
    item: FeedEntries,
    fresh: list[Entry],
    detect_language: Callable[[str], str] | None,
) -> int:
    if not fresh:
        return 0
    if detect_language is not None:
        fresh = [
            e if e.language else replace(e, language=detect_language(f"{e.title}\n{e.summary}"))
            for e in fresh
        ]
    rows = [_article_row(item.feed_id, e, item) for e in fresh]
    count = getattr(session.execute(statement, rows), "rowcount", -1)
    if item.full_text and not item.is_history:
        keys = [_key(e) for e in fresh if e.link]
        _queue_pages(session, item.feed_id, keys, item.fetched_at)
    return count if isinstance(count, int) and count >= 0 else len(rows)


def _queue_pages(session: Session, feed_id: int, keys: list[str], now: datetime) -> None:
    """A pending body row for each of these articles that has none yet."""
    if not keys:
        return
    articles = session.execute(
        select(Article.id, Article.link).where(
            Article.feed_id == feed_id,
            Article.entry_key.in_(keys),
            ~select(ArticleBody.article_id).where(ArticleBody.article_id == Article.id).exists(),
        )
    ).all()
    if articles:
        session.execute(
            insert(ArticleBody),
            [
                {"article_id": a.id, "url": a.link, "status": "pending", "next_attempt_at": now}
                for a in articles
            ],
        )


LOOKUP_CHUNK = 500  # bound parameters per IN list (SQLite allows 32,766 in all)
_ARTICLES = Article.__table__


def _key(entry: Entry) -> str:
    return entry.entry_key[:512]  # as stored


def _link(entry: Entry) -> str:
    return entry.canonical_link[:2048]  # as stored


def _known_links(session: Session, links: set[str]) -> set[str]:
    """The canonical links among ``links`` already stored by any feed (index lookups)."""
    ordered, known = sorted(links), set[str]()
    for at in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = ordered[at : at + LOOKUP_CHUNK]
        column = _ARTICLES.c.canonical_link
        known.update(session.execute(select(column).where(column.in_(chunk))).scalars())
    return known


def _known_keys(session: Session, feed_id: int, entries: Sequence[Entry]) -> set[str]:
    keys = list({_key(e) for e in entries})
    known: set[str] = set()
    for at in range(0, len(keys), LOOKUP_CHUNK):
        query = select(_ARTICLES.c.entry_key).where(
            _ARTICLES.c.feed_id == feed_id, _ARTICLES.c.entry_key.in_(keys[at : at + LOOKUP_CHUNK])
        )
        known.update(session.execute(query).scalars())
    return known


def _unseen(session: Session, item: FeedEntries, seen_links: set[str]) -> list[Entry]:
    """Drop entries whose key (in this feed) or canonical link (in ``seen_links``: stored
    anywhere, or taken by an earlier entry of this call) is already stored; add the links of
    the entries kept to ``seen_links``."""
    known_keys = set() if item.known_empty else _known_keys(session, item.feed_id, item.entries)
    fresh = []
    for entry in item.entries:
        key, link = _key(entry), _link(entry)
        if key in known_keys or (link and link in seen_links):
            continue
        known_keys.add(key)
        if link:
            seen_links.add(link)
        fresh.append(entry)
    return fresh


def _article_row(feed_id: int, entry: Entry, item: FeedEntries) -> dict[str, Any]:
    return {
        "feed_id": feed_id,
        "entry_key": _key(entry),
        "link": entry.link[:2048],
        "canonical_link": _link(entry),
        "title": entry.title,
        "summary": entry.summary,
        "author": entry.author[:512],
        "tags": list(entry.tags),
        "language": entry.language[:16],
        "published_at": entry.published_at,
        "fetched_at": item.fetched_at,
        "is_history": item.is_history,
        "matched_at": None,
    }


def release(session: Session, feed_ids: Sequence[int], owner: str) -> None:
    """Give back leases on feeds that were claimed but not polled (stop requested)."""
    if feed_ids:
        session.execute(
            update(Feed)
            .where(Feed.id.in_(list(feed_ids)), Feed.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
