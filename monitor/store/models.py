"""Typed SQLAlchemy 2 models: the whole schema of ``monitor``.

Alembic (``migrations/``) is the only way this schema reaches a database; a test runs
``alembic upgrade head`` followed by ``alembic check`` on SQLite and PostgreSQL so the two never
drift. Every constraint and index is named (see ``NAMING``) so migrations are portable.

Times are stored as naive UTC (:class:`UTCDateTime` adds and strips the zone) because SQLite has
no time-zone type; code only ever sees aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from monitor.clock import utcnow
from monitor.domain import DeliveryKind, DeliveryStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


E = TypeVar("E", bound=StrEnum)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class StrEnumText(TypeDecorator[E]):
    """A StrEnum stored as its value in a VARCHAR (no database enum type: the allowed values
    are a named CHECK constraint, see :func:`one_of`); code reads and writes the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__(32)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def one_of(column: str, enum: type[StrEnum]) -> CheckConstraint:
    """A CHECK constraint named ``ck_<table>_<column>`` holding ``column`` to ``enum``'s values."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class Feed(Base):
    """A feed and its polling state; the row, not the scheduler, decides when it is due.

    ``url`` is the feed's identity: the URL configured or added, never rewritten, so config
    sync and ``feeds add`` always find the row again. A permanent redirect (301/308) is
    recorded in ``redirect_url`` and polling fetches from there."""

    __tablename__ = "feeds"
    __table_args__ = (
        Index("ix_feeds_due", "enabled", "next_poll_at"),
        Index("ix_feeds_lease_until", "lease_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    redirect_url: Mapped[str | None] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(512), default="")
    title: Mapped[str] = mapped_column(String(1024), default="")
    site_url: Mapped[str] = mapped_column(String(2048), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    interval_s: Mapped[float | None] = mapped_column(Float)
    full_text: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    from_config: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(256))
    ttl_s: Mapped[float | None] = mapped_column(Float)
    next_poll_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    first_success_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failing_since: Mapped[datetime | None]
    health_alerted_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    articles: Mapped[list[Article]] = relationship(back_populates="feed", passive_deletes=True)

    @hybrid_property
    def label(self) -> str:
        """What a person calls the feed: its configured name, else its own title, else its URL."""
        return self.name or self.title or self.url

    @label.inplace.expression
    @classmethod
    def _label_expression(cls) -> ColumnElement[str]:
        return func.coalesce(func.nullif(cls.name, ""), func.nullif(cls.title, ""), cls.url)

    @property
    def health(self) -> str:
        """``ok`` / ``new`` / ``erroring`` / ``disabled``: the one-word state the API, the web
        page and metrics show; :attr:`health_detail` adds the why for ``feeds list``."""
        if not self.enabled:
            return "disabled"
        if self.consecutive_errors:
            return "erroring"
        if self.last_success_at is None:
            return "new"
        return "ok"

    @property
    def health_detail(self) -> str:
        """:attr:`health` with its reason: ``erroring (3x): HTTP 500``, ``disabled: gone``."""
        state = self.health
        if state == "disabled" and self.disabled_reason:
            return f"disabled: {self.disabled_reason}"
        if state == "erroring":
            return f"erroring ({self.consecutive_errors}x): {self.last_error}"
        return state


class Article(Base):
    """One entry of one feed; ``is_history`` marks entries found on a feed's first poll."""

    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("feed_id", "entry_key"),
        Index("ix_articles_canonical_link", "canonical_link"),
        Index("ix_articles_published_at", "published_at"),
        Index("ix_articles_pending_match", "matched_at", "is_history", "published_at"),
        Index("ix_articles_vector_deferred", "vector_deferred", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(String(512))
    link: Mapped[str] = mapped_column(String(2048), default="")
    canonical_link: Mapped[str] = mapped_column(String(2048), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(512), default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(16), default="")
    published_at: Mapped[datetime]
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_history: Mapped[bool] = mapped_column(Boolean, default=False)
    matched_at: Mapped[datetime | None]
    # matched without a vector (no topic's aliases were in it): embedded later, when matching
    # is idle, for search; see pipeline/matching.py
    vector_deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    feed: Mapped[Feed] = relationship(back_populates="articles")


class ArticleBody(Base):
    """The page of an article of a ``full_text`` feed: waiting, fetched (with its body), or not.

    Written ``pending`` in the same transaction as the article, so a crash loses no work; once
    ``done`` it is never fetched again, so a restart refetches nothing. ``lead`` is what
    replaces the summary for embedding and display ("" when the summary is enough).
    """

    __tablename__ = "article_bodies"
    __table_args__ = (Index("ix_article_bodies_due", "status", "next_attempt_at"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # pending -> done | skipped (robots.txt, too large, not a page) | failed (gave up)
    url: Mapped[str] = mapped_column(String(2048), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    lead: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    fetched_at: Mapped[datetime | None]


class Embedding(Base):
    """An article's vector, keyed by the model that made it, so a model change re-embeds."""

    __tablename__ = "embeddings"
    # (model_id, created_at): counts per model, and the search index finds vectors stored out
    # of article-id order (backfilled) by the time they were stored
    __table_args__ = (Index("ix_embeddings_model_id_created_at", "model_id", "created_at"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Topic(Base):
    """A topic as last loaded from config; ``config_hash`` tells when its definition changed."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    threshold: Mapped[float] = mapped_column(Float)
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Story(Base):
    """Articles reporting the same story for one topic; only the first one alerts."""

    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_topic_id_last_seen_at", "topic_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    first_article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text, default="")
    article_count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Match(Base):
    """An article that reached a topic's threshold, with the explanation of why."""

    __tablename__ = "matches"
    __table_args__ = (
        UniqueConstraint("article_id", "topic_id"),
        Index("ix_matches_topic_id_published_at", "topic_id", "published_at"),
        Index("ix_matches_published_at", "published_at"),
        Index("ix_matches_story_id", "story_id"),
        # the web app's matches page sorted by score, with or without a topic (keyset pages)
        Index("ix_matches_topic_id_score", "topic_id", "score"),
        Index("ix_matches_score", "score"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))
    score: Mapped[float] = mapped_column(Float)
    semantic_score: Mapped[float] = mapped_column(Float, default=0.0)
    explanation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # denormalised from the article so "recent matches of a topic" is one index range scan
    published_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    alerted: Mapped[bool] = mapped_column(Boolean, default=True)


class Delivery(Base):
    """The outbox: one row per (alert, channel), written in the match's own transaction."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_match_id", "match_id"),
        one_of("kind", DeliveryKind),
        one_of("status", DeliveryStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    match_id: Mapped[int | None] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"))
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(128))
    kind: Mapped[DeliveryKind] = mapped_column(
        StrEnumText(DeliveryKind), default=DeliveryKind.ALERT
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnumText(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """Every try of a delivery, for `monitor alerts list` and post-mortems."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)


class Feedback(Base):
    """A user's judgement of an article for a topic; judged articles become exemplars."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("article_id", "topic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    match_id: Mapped[int | None] = mapped_column(ForeignKey("matches.id", ondelete="SET NULL"))
    relevant: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackEvent(Base):
    """Every judgement as it was made, oldest first. ``feedback`` keeps the latest one per
    (article, topic), which is what matching learns from; this is the history the web app's
    match page shows (who changed their mind, and when)."""

    __tablename__ = "feedback_events"
    __table_args__ = (Index("ix_feedback_events_article_id", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    match_id: Mapped[int | None] = mapped_column(ForeignKey("matches.id", ondelete="SET NULL"))
    relevant: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Worker(Base):
    """A running daemon: heartbeat for /healthz, and the SQLite single-owner lock."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(256), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_tick_at: Mapped[datetime] = mapped_column(default=utcnow)
