"""The full-text stage's SQL: claim pending article pages under a lease, record what came back,
and the leads matching embeds instead of thin summaries.

Claiming works like feed claiming (``store/polling.py``): due rows (``pending``, their
``next_attempt_at`` come, no live lease) are leased to one worker, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; a dead worker's lease simply expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from monitor.store import db
from monitor.store.models import Article, ArticleBody

PENDING, DONE, SKIPPED, FAILED = "pending", "done", "skipped", "failed"


@dataclass(frozen=True, slots=True)
class PageJob:
    """One article page to fetch, with what a conditional GET and the lead rule need."""

    article_id: int
    url: str
    title: str
    summary: str
    etag: str | None
    last_modified: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """What one attempt changes on the body row."""

    article_id: int
    status: str
    next_attempt_at: datetime
    body: str | None = None  # None: keep the stored body
    lead: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    reason: str = ""
    fetched_at: datetime | None = None


def claim_pages(
    session: Session, owner: str, *, now: datetime, lease_s: float, limit: int
) -> list[PageJob]:
    """Lease up to ``limit`` due pages to ``owner``, the newest articles first."""
    claimable = and_(
        ArticleBody.status == PENDING,
        ArticleBody.next_attempt_at <= now,
        or_(ArticleBody.lease_until.is_(None), ArticleBody.lease_until < now),
    )
    until = now + timedelta(seconds=lease_s)
    order = (ArticleBody.article_id.desc(),)
    ids = db.lease(
        session, ArticleBody.article_id, claimable, order, limit=limit, owner=owner, until=until
    )
    if not ids:
        return []
    rows = session.execute(
        select(ArticleBody, Article.title, Article.summary)
        .join(Article, Article.id == ArticleBody.article_id)
        .where(ArticleBody.article_id.in_(ids), ArticleBody.lease_owner == owner)
        .where(ArticleBody.lease_until == until)
    ).all()
    return [
        PageJob(
            b.article_id, b.url, title or "", summary or "", b.etag, b.last_modified, b.attempts
        )
        for b, title, summary in rows
    ]


def record_pages(session: Session, owner: str, outcomes: Sequence[PageOutcome]) -> None:
    """Write each attempt's result and release its lease."""
    for outcome in outcomes:
        row = session.get(ArticleBody, outcome.article_id)
        if row is None or row.lease_owner not in (owner, None):
            continue  # deleted with its article, or our lease ran out and another took it
        row.status, row.next_attempt_at = outcome.status, outcome.next_attempt_at
        row.attempts = (row.attempts or 0) + 1
        row.reason = outcome.reason[:1000]
        row.lease_owner, row.lease_until = None, None
        if outcome.body is not None:
            row.body, row.lead = outcome.body, outcome.lead or ""
        if outcome.etag is not None or outcome.last_modified is not None:
            row.etag, row.last_modified = outcome.etag, outcome.last_modified
        if outcome.fetched_at is not None:
            row.fetched_at = outcome.fetched_at


def leads(session: Session, article_ids: Sequence[int]) -> dict[int, str]:
    """Article id -> the body lead that replaces its thin summary (only where there is one)."""
    if not article_ids:
        return {}
    rows = session.execute(
        select(ArticleBody.article_id, ArticleBody.lead).where(
            ArticleBody.article_id.in_(list(article_ids)),
            ArticleBody.status == DONE,
            ArticleBody.lead != "",
        )
    )
    return {int(aid): str(lead) for aid, lead in rows}


def page_of(session: Session, article_id: int) -> ArticleBody | None:
    """The article's body row, if its feed fetches full text (for ``monitor show``)."""
    return session.get(ArticleBody, article_id)
