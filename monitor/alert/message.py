"""Plain data a channel sends: no SQLAlchemy here, the pipeline turns rows into these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MessageKind = Literal["alert", "digest", "health", "test"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One matched article as a user sees it. Every text field is untrusted feed content."""

    topic: str
    title: str
    link: str
    source: str
    score: float
    published_at: datetime | None = None
    passage: str = ""
    also_reported_by: tuple[str, ...] = ()
    is_story_update: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery sends: a single alert, a digest of several, or an operator notice.

    ``recipients`` overrides the email channel's own list (per-topic recipients); ``notice`` is
    the body of health and test messages, which carry no article.
    """

    kind: MessageKind
    topic: str = ""
    alerts: tuple[Alert, ...] = ()
    notice: str = ""
    recipients: tuple[str, ...] = ()
    created_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The one-line title: the article's title, or a summary for digests and notices."""
        if self.kind == "alert" and self.alerts:
            prefix = "Update: " if self.alerts[0].is_story_update else ""
            return prefix + self.alerts[0].title
        if self.kind == "digest":
            count = len(self.alerts)
            return f"{count} new article{'s' if count != 1 else ''}"
        return self.notice.splitlines()[0] if self.notice else self.kind
