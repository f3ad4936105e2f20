"""Plain data a channel sends: no SQLAlchemy here, the pipeline turns rows into these.

Every text field comes from feeds, feed servers or config, so it is cleaned here, once, when an
:class:`Alert` or :class:`Message` is made, rather than in each channel: bidi controls
(U+202E can make ``gpj.exe`` read as ``exe.jpg``) and C0/C1 control characters are removed from
every field a user sees, and a link that is not http(s) (``javascript:``, ``data:``) becomes
``""``, so no channel can show it as a link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from monitor.domain import DeliveryKind

# a message is of the kind of the outbox row it is sent for: one enum for both
MessageKind = DeliveryKind

# Unicode bidi controls: embeddings/overrides, isolates, marks (LRM, RLM, ALM)
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_C0_C1 = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_SEPARATORS = [0x2028, 0x2029]  # line and paragraph separators
# one-line fields: any control or separator becomes a space, then spaces are folded
_ONE_LINE = {**dict.fromkeys(_C0_C1 + _SEPARATORS, " "), **dict.fromkeys(_BIDI)}
# multi-line fields keep newlines and tabs
_MULTI_LINE = {
    **dict.fromkeys(_C0_C1),
    **dict.fromkeys(_BIDI),
    **dict.fromkeys(_SEPARATORS, "\n"),
    ord("\n"): "\n",
    ord("\t"): "\t",
}
# links, as a browser reads them (WHATWG URL): C0 and space trimmed at the ends, tab and newlines
# removed inside; other invisible characters inside are percent-encoded
_LINK_TRIMMED = "".join(map(chr, range(0x21)))
_LINK_REMOVED = dict.fromkeys([0x09, 0x0A, 0x0D])
_LINK_ENCODED = frozenset(_C0_C1 + _BIDI + _SEPARATORS + [0x20])


def one_line(text: str) -> str:
    """``text`` without control or bidi characters, on one line with single spaces."""
    return " ".join(text.translate(_ONE_LINE).split())


def multi_line(text: str) -> str:
    """``text`` without control or bidi characters; newlines (``\\r\\n`` too) and tabs kept."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_MULTI_LINE).strip()


def http_link(url: str) -> str:
    """The link if it is http(s), else ``""``: a ``javascript:`` link must never reach a user.

    As a browser reads a URL: leading and trailing spaces and controls are ignored, tabs and
    newlines inside are removed (so ``java\\tscript:`` cannot pass for anything else); other
    spaces, controls and bidi characters inside are percent-encoded, as a browser would send
    them, so they are neither shown nor able to reorder what is shown.
    """
    url = url.strip(_LINK_TRIMMED).translate(_LINK_REMOVED)
    url = "".join(quote(c, safe="") if ord(c) in _LINK_ENCODED else c for c in url)
    return url if url.lower().startswith(("http://", "https://")) else ""


def _clean(
    obj: object, one_line_fields: tuple[str, ...], multi_line_fields: tuple[str, ...]
) -> None:
    for name in one_line_fields:
        object.__setattr__(obj, name, one_line(getattr(obj, name)))
    for name in multi_line_fields:
        object.__setattr__(obj, name, multi_line(getattr(obj, name)))


LEAD_CHARS = 300  # the start of the article's summary an alert shows


def lead_of(summary: str, limit: int = LEAD_CHARS) -> str:
    """The start of an article's summary on one line, cut at a word with an ellipsis."""
    text = one_line(summary)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.") + "\u2026"


def feedback_command(match_id: int, verdict: str) -> str:
    """The CLI command that judges a match, shown when no web app link can be signed."""
    return f"monitor feedback {match_id} {verdict}"


@dataclass(frozen=True, slots=True)
class Judgement:
    """One "relevant" / "not relevant" action of an alert: a signed link to the web app, or,
    without ``api.public_url``, the CLI command that does the same."""

    verdict: str  # "relevant" | "irrelevant"
    url: str = ""
    command: str = ""

    @property
    def label(self) -> str:
        return "Relevant" if self.verdict == "relevant" else "Not relevant"


@dataclass(frozen=True, slots=True)
class Alert:
    """One matched article as a user sees it, with the handles to act on it: the match,
    article and story ids, and the judgement actions. Every text field is untrusted feed
    content, cleaned on construction (see the module docstring).

    ``lead`` is the article's own text (the start of its summary); ``passage`` is the topic's
    seed passage closest to it, which explains the match.
    """

    topic: str
    title: str
    link: str
    source: str
    score: float
    published_at: datetime | None = None
    passage: str = ""
    also_reported_by: tuple[str, ...] = ()
    is_story_update: bool = False
    match_id: int | None = None
    article_id: int | None = None
    story_id: int | None = None
    lead: str = ""
    aliases: tuple[str, ...] = ()
    semantic: float | None = None
    passage_source: str = ""
    judgements: tuple[Judgement, ...] = ()

    def __post_init__(self) -> None:
        _clean(self, ("topic", "title", "source", "lead", "passage_source"), ("passage",))
        object.__setattr__(self, "link", http_link(self.link))
        others = tuple(name for name in map(one_line, self.also_reported_by) if name)
        object.__setattr__(self, "also_reported_by", others)
        object.__setattr__(self, "aliases", tuple(a for a in map(one_line, self.aliases) if a))
        cleaned = tuple(
            Judgement(j.verdict, http_link(j.url), one_line(j.command)) for j in self.judgements
        )
        object.__setattr__(self, "judgements", cleaned)

    @property
    def handles(self) -> str:
        """``match 42 · story 7 · article 123``: what a reader quotes to find this alert."""
        parts = [("match", self.match_id), ("story", self.story_id), ("article", self.article_id)]
        return " \u00b7 ".join(f"{name} {value}" for name, value in parts if value is not None)

    @property
    def judged_by_link(self) -> bool:
        return any(j.url for j in self.judgements)


@dataclass(frozen=True, slots=True)
class Part:
    """Where a message sits in a digest sent as several messages (Slack holds 50 blocks)."""

    index: int  # 1-based
    count: int
    total_alerts: int  # alerts in the whole digest, not in this part

    @property
    def label(self) -> str:
        return f"part {self.index} of {self.count}"


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery sends: a single alert, a digest of several, or an operator notice.

    ``recipients`` overrides the email channel's own list (per-topic recipients); ``notice`` is
    the body of health and test messages, which carry no article; ``part`` is set when a digest
    is one of several messages.
    """

    kind: MessageKind
    topic: str = ""
    alerts: tuple[Alert, ...] = ()
    notice: str = ""
    recipients: tuple[str, ...] = ()
    created_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    part: Part | None = None

    def __post_init__(self) -> None:
        _clean(self, ("topic",), ("notice",))
        object.__setattr__(self, "kind", MessageKind(self.kind))  # "alert" reads as ALERT

    @property
    def headline(self) -> str:
        """The one-line title: the article's title, or a summary for digests and notices."""
        if self.kind == MessageKind.ALERT and self.alerts:
            prefix = "Update: " if self.alerts[0].is_story_update else ""
            return prefix + self.alerts[0].title
        if self.kind == MessageKind.DIGEST:
            count = self.part.total_alerts if self.part else len(self.alerts)
            head = f"{count} new article{'s' if count != 1 else ''}"
            return f"{head}, {self.part.label}" if self.part else head
        return self.notice.splitlines()[0] if self.notice else self.kind
