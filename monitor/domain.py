"""Plain data passed between stages. No SQLAlchemy, httpx or feedparser types cross this line."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class FeedRef:
    """What the fetch stage needs to know about one feed."""

    id: int
    url: str
    etag: str | None = None
    last_modified: str | None = None
    interval_s: float | None = None  # the feed's own interval; None means the config default
    consecutive_errors: int = 0  # errors before this poll, for the backoff
    has_succeeded: bool = False  # False until the first successful poll: its entries are history
    ttl_s: float | None = None  # the <ttl> stored from the last full fetch
    language: str = ""  # the feed's configured/stored language, used when entries have none
    full_text: bool = False  # new articles get their page fetched (pipeline/fulltext.py)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one HTTP fetch produced: a body to parse, a 304, or an error to record."""

    url: str
    status: int | None
    body: bytes | None = None
    final_url: str = ""
    permanent_redirect_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after_s: float | None = None
    max_age_s: float | None = None
    content_type: str = ""
    elapsed_s: float = 0.0
    error: str = ""
    gone: bool = False
    skipped: bool = False  # not fetched at all (stop requested); nothing to record
    too_large: bool = False  # the body passed the size limit and was cut off

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def ok(self) -> bool:
        return not self.error and self.body is not None


@dataclass(frozen=True, slots=True)
class Entry:
    """One normalised feed entry: plain text, UTC time, a stable key."""

    entry_key: str
    link: str
    canonical_link: str
    title: str
    summary: str
    published_at: datetime
    author: str = ""
    tags: tuple[str, ...] = ()
    language: str = ""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """Entries and feed-level facts parsed from fetched bytes."""

    title: str = ""
    site_url: str = ""
    language: str = ""
    ttl_s: float | None = None
    entries: tuple[Entry, ...] = ()
    bozo: bool = False
    bozo_reason: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an article matched (or not): stored with every match and shown to users."""

    score: float
    semantic: float
    passage: str = ""
    passage_source: str = ""
    aliases: tuple[str, ...] = ()
    # each require group with no alias in the text, by its aliases (any one is a veto)
    missing_groups: tuple[tuple[str, ...], ...] = ()
    excluded_by: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- the outbox ------------------------------------------------------------------------------


class DeliveryKind(StrEnum):
    """What an outbox row sends, and so the kind of the Message a channel gets (the webhook
    body's ``kind``). Stored as its value; a CHECK constraint holds the column to these."""

    ALERT = "alert"  # one match
    DIGEST = "digest"  # several queued alerts of a topic, folded at a digest slot
    HEALTH = "health"  # an operator notice: a feed failing or recovered
    TEST = "test"  # a notice sent to try a channel


class DeliveryStatus(StrEnum):
    """Where an outbox row is: ``pending -> sending -> sent | failed``; rows for a digest wait
    as ``queued_digest`` and become ``digested`` once folded into a digest row."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    QUEUED_DIGEST = "queued_digest"
    DIGESTED = "digested"


@dataclass(frozen=True, slots=True)
class AlertPayload:
    """What an ``alert`` row records of its match when it is queued."""

    article_id: int
    topic: str
    score: float
    story_id: int | None = None
    story_update: bool = False  # the article joined a story that already alerted


@dataclass(frozen=True, slots=True)
class DigestPayload:
    """A digest row (or one part of a split digest): the ``alert`` rows it folds, in order."""

    topic: str
    slot: str  # the digest slot, ISO 8601
    members: tuple[int, ...]
    part: int | None = None  # 1-based, set only when the digest is split into several rows
    parts: int | None = None
    total: int | None = None  # alerts over all parts


@dataclass(frozen=True, slots=True)
class NoticePayload:
    """A ``health`` or ``test`` row: text for the operator, and for health the feed's state."""

    notice: str
    topic: str = ""
    state: str | None = None  # health: "down" or "up"
    failing_since: str | None = None  # health: the failing period it reports, ISO 8601


Payload = AlertPayload | DigestPayload | NoticePayload
