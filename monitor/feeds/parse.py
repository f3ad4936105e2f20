"""Feed bytes -> normalised entries, with feedparser; and the process pool that runs it.

feedparser never fetches here: it is handed the bytes httpx read, with
``sanitize_html=False, resolve_relative_uris=False`` (we reduce everything to plain text
ourselves, and the defaults cost about 30% more CPU per feed).

Hostile XML: feedparser's ``replace_doctype`` drops every ``<!ENTITY>`` whose value refers to
another entity or is external before the SAX parser sees the document, and it turns off
``feature_external_ges``; so a billion-laughs document or an external entity is never expanded
(the parser reports an undefined entity, the loose parser takes over, the text stays literal).
``tests/feeds/test_parse.py`` holds both cases.

Slow input: feedparser runs a regex with quadratic backtracking on author strings
(``_sync_author_detail``), so a crafted ``<author>`` can hang a parse for minutes. Parsing
therefore runs in worker processes (:class:`ParserPool`) with a time limit; a parse that passes
it has its process killed, the pool is replaced and the feed gets a :class:`ParseError`.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import html
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser

from monitor import metrics
from monitor.domain import Entry, ParsedFeed
from monitor.errors import ParseError
from monitor.feeds.language import AUTO, declared_language
from monitor.feeds.plainrss import read_plain_rss

T = TypeVar("T")
FUTURE_TOLERANCE = timedelta(minutes=15)  # clock skew we accept before clamping a date
# earlier dates are placeholders (0001-01-01, the Unix epoch 1970-01-01), not publication dates
EARLIEST_DATE = datetime(1970, 1, 2, tzinfo=UTC)
_ISO_DATE = re.compile(r"\s*([+-]?\d+)-(\d+)-(\d+)")
MAX_KEY_CHARS = 200
MAX_TEXT_CHARS = 20_000
MAX_TAGS = 32
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wt_mc",
        "rss",
        "ref_src",
        "cmpid",
        "ocid",
        "__twitter_impression",
        "s_cid",
        "ito",
        "at_medium",
        "at_campaign",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "ga_")

# --------------------------------------------------------------------------------------------
# Plain text


_DROPPED_BLOCKS = re.compile(
    r"<(script|style|template|noscript|iframe|object|svg|head)\b[^>]*>.*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_COMMENTS = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|$)", re.DOTALL)
_BLOCK_TAGS = re.compile(
    r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|pre|hr|section|article|"
    r"header|footer|figure|figcaption|dd|dt|dl)\b[^>]*>",
    re.IGNORECASE,
)
_TAGS = re.compile(r"</?[A-Za-z][^>]*>|<![^>]*>|<\?.*?\?>", re.DOTALL)
_CONTROL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127], " ")


def plain_text(value: str | None, *, limit: int = MAX_TEXT_CHARS) -> str:
    """HTML (or text) -> one line of plain text: tags dropped, entities decoded, spaces folded.

    A small regex stripper, not a full HTML parser: feed summaries are fragments, and what we
    need is text to read and embed, not a faithful DOM. ``<script>``/``<style>`` bodies and
    comments are removed with their content; block tags become spaces so words do not merge.
    """
    if not value:
        return ""
    text = value
    if "<" in text:
        text = _CDATA.sub(r"\1", text)
        text = _COMMENTS.sub(" ", text)
        text = _DROPPED_BLOCKS.sub(" ", text)
        text = _BLOCK_TAGS.sub(" ", text)
        text = _TAGS.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    text = " ".join(text.translate(_CONTROL).split())
    return text[:limit]


# --------------------------------------------------------------------------------------------
# Links and keys


def canonical_link(link: str) -> str:
    """The link without tracking parameters or fragment, scheme and host lower-cased."""
    if not link:
        return ""
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return link.strip()
    if parts.scheme not in ("http", "https"):
        return link.strip()
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in TRACKING_PARAMS and not key.lower().startswith(TRACKING_PREFIXES)
    ]
    netloc = parts.netloc.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def display_link(link: str) -> str:
    """The link users see (alerts, API, page): tracking parameters removed, and ``ref`` too.

    Unlike :func:`canonical_link`, everything else is kept exactly as the feed wrote it (the
    other parameters' encoding and order, the case, the fragment), since rewriting those can
    break a link. Identity is not taken from it: the entry key and the canonical link still come
    from the feed's own link, so articles stored before keep deduplicating. ``ref`` is removed
    for display only, as adding it to the canonical form would change stored identities.
    """
    head, hash_mark, fragment = link.partition("#")
    base, question_mark, query = head.partition("?")
    if not question_mark or not base.lower().startswith(("http://", "https://")):
        return link

    def tracking(pair: str) -> bool:
        key = next(iter(parse_qsl(pair, keep_blank_values=True)), ("", ""))[0].lower()
        return key in TRACKING_PARAMS or key == "ref" or key.startswith(TRACKING_PREFIXES)

    kept = "&".join(pair for pair in query.split("&") if not tracking(pair))
    return base + ("?" + kept if kept else "") + hash_mark + fragment


def _short_key(value: str) -> str:
    value = value.strip()
    if len(value) <= MAX_KEY_CHARS:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def entry_key(guid: str, link: str, title: str, summary: str) -> str:
    """A stable id: the guid, else the link, else a hash of title and summary."""
    if guid.strip():
        return _short_key(guid)
    if link.strip():
        return _short_key(link)
    digest = hashlib.sha256(f"{title}\n{summary}".encode("utf-8", "replace")).hexdigest()
    return f"hash:{digest}"


# --------------------------------------------------------------------------------------------
# Parsing


def _utc(struct: time.struct_time | None) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _iso_date_readable(text: str) -> bool:
    """False for an ISO 8601 date feedparser would misread: it takes ``10000-01-01`` for
    2010-12-01 and rolls ``2026-13-45`` over into 2027; RFC 822 dates it rejects itself."""
    found = _ISO_DATE.match(text)
    if found is None:
        return True
    year, month, day = found.groups()
    if len(year) != 4 or not 1 <= int(month) <= 12:
        return False
    return 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]


def _published(raw: Mapping[str, Any], fetched_at: datetime) -> datetime:
    """The entry's date in UTC. A date that cannot be read or lies outside
    ``EARLIEST_DATE .. fetched_at + FUTURE_TOLERANCE`` counts as missing (placeholders such as
    0001-01-01 and the Unix epoch, typos such as year 10000 or 9999), and a missing published
    date falls back to the updated date, then to the fetch time: the same rule for every
    format and both parse paths."""
    for text_key, parsed_key in (("published", "published_parsed"), ("updated", "updated_parsed")):
        text = str(raw.get(text_key) or "")
        when = _utc(raw.get(parsed_key)) if _iso_date_readable(text) else None
        if when is not None and EARLIEST_DATE <= when <= fetched_at + FUTURE_TOLERANCE:
            return when
    return fetched_at


def _entry_language(entry: Mapping[str, Any]) -> str:
    """The language in force on the entry: its own ``language`` (``dc:language``), else the
    ``xml:lang`` on its summary or title (which feedparser inherits from the feed when the
    entry sets none)."""
    candidates = [entry.get("language")]
    for key in ("summary_detail", "title_detail"):
        detail = entry.get(key)
        if isinstance(detail, Mapping):
            candidates.append(detail.get("language"))
    for value in candidates:
        code, _ambiguous = declared_language(value)
        if code:
            return code
    return ""


@dataclass(frozen=True, slots=True)
class _Languages:
    """How a feed's entries get their language (precedence in :mod:`monitor.feeds.language`)."""

    declared: str  # the one language the feed-level declaration names; "" if none or several
    inherited: str  # for entries that declare nothing of their own; "" = detect when stored

    @staticmethod
    def of(feed: Mapping[str, Any], default: str) -> _Languages:
        declared, _several = declared_language(feed.get("language"))
        inherited = "" if default == AUTO else (declared or declared_language(default)[0])
        return _Languages(declared, inherited)

    def for_entry(self, own: str) -> str:
        """An entry's own declaration counts where it differs from the feed's (feedparser hands
        the feed's ``xml:lang`` down to entries that set none, as XML does)."""
        return own if own and own != self.declared else self.inherited


def _longest_text(entry: Mapping[str, Any]) -> str:
    texts = [entry.get("summary") or ""]
    texts += [c.get("value") or "" for c in entry.get("content") or () if isinstance(c, Mapping)]
    return max(texts, key=len)


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in entry.get("tags") or ():
        term = plain_text(
            (tag.get("term") or tag.get("label") or "") if isinstance(tag, Mapping) else "",
            limit=100,
        )
        if term:
            seen.setdefault(term, None)
    return tuple(seen)[:MAX_TAGS]


def _entry(raw: Mapping[str, Any], *, base_url: str, language: str, fetched_at: datetime) -> Entry:
    title = plain_text(raw.get("title"), limit=2000)
    summary = plain_text(_longest_text(raw))
    link = (raw.get("link") or "").strip()
    if link:
        link = urljoin(base_url, link)[:2048]
    guid = str(raw.get("id") or "")
    published = _published(raw, fetched_at)
    return Entry(
        entry_key=entry_key(guid, link, title, summary),
        link=display_link(link),
        canonical_link=canonical_link(link)[:2048],
        title=title,
        summary=summary,
        published_at=published,
        author=plain_text(raw.get("author"), limit=512),
        tags=_tags(raw),
        language=language,
    )


def _ttl_s(feed: Mapping[str, Any]) -> float | None:
    ttl = str(feed.get("ttl") or "").strip()
    return float(ttl) * 60 if ttl.isdigit() and int(ttl) > 0 else None


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str = "",
    fetched_at: datetime,
    default_language: str = "",
    plain_rss: bool = True,
) -> ParsedFeed:
    """Parse fetched bytes into a :class:`ParsedFeed`; raise :class:`ParseError` if unusable.

    A malformed ("bozo") feed that still yields entries is used; one that yields nothing is an
    error. Entries repeating an earlier entry's key within the same document are dropped.
    Plain RSS 2.0 takes the fast path of :mod:`monitor.feeds.plainrss` (``plain_rss=False``
    forces feedparser, to compare the two).
    """
    # A missing Content-Type is read as XML (the XML declaration then names the encoding).
    content_type = content_type or "application/xml"
    plain = read_plain_rss(body, content_type) if plain_rss else None
    if plain is not None:  # plain RSS 2.0: the same fields, read without feedparser's cost
        feed, raw_entries = plain
        bozo, reason = False, ""
    else:
        # No content-location: feedparser would resolve guids against it and change their keys.
        result = feedparser.parse(
            body,
            sanitize_html=False,
            resolve_relative_uris=False,
            response_headers={"content-type": content_type},
        )
        feed = result.get("feed") or {}
        raw_entries = result.get("entries") or []
        bozo = bool(result.get("bozo"))
        reason = str(result.get("bozo_exception") or "") if bozo else ""
        if not raw_entries and (reason or not result.get("version")):
            raise ParseError(f"not a usable feed: {reason or 'no RSS/Atom content found'}"[:500])
    languages = _Languages.of(feed, default_language)
    entries = _unique(
        _entry(
            raw,
            base_url=url,
            language=languages.for_entry(_entry_language(raw)),
            fetched_at=fetched_at,
        )
        for raw in raw_entries
    )
    return ParsedFeed(
        title=plain_text(feed.get("title"), limit=1024),
        site_url=(feed.get("link") or "")[:2048],
        language=languages.declared,
        ttl_s=_ttl_s(feed),
        entries=tuple(entries),
        bozo=bozo,
        bozo_reason=reason[:500],
    )


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    seen: set[str] = set()
    out = []
    for entry in entries:
        if entry.entry_key not in seen:
            seen.add(entry.entry_key)
            out.append(entry)
    return out


# --------------------------------------------------------------------------------------------
# The process pool


def _warm() -> int:
    """A no-op task that makes a worker import this module before real work arrives."""
    return os.getpid()


PARENT_CHECK_S = 0.5  # how often a parser worker looks whether the daemon still lives


def _init_worker(parent_pid: int) -> None:
    """Set up a parser worker.

    Ctrl-C is left to the daemon, which shuts the pool down itself; otherwise a Ctrl-C in a
    terminal (sent to the whole process group) prints a traceback from every worker.

    A worker exits when the daemon dies: after a SIGKILL nobody shuts the pool down, and an
    idle worker waits on its task queue forever (its siblings hold the queue's pipe open), so
    workers, and the multiprocessing resource tracker whose pipe they hold, lived on with
    ppid 1. A daemon thread notices the re-parenting. (prctl's PR_SET_PDEATHSIG would fire when
    the *thread* that started the worker ends, which in a thread pool is not the daemon's
    death.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_when_orphaned, args=(parent_pid,), name="parent-watch", daemon=True
    ).start()


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)  # no cleanup to run: the worker holds nothing but its inputs


class ParserPool:
    """Runs :func:`parse_feed` in worker processes, each parse under a time limit.

    At most ``workers`` parses are in flight (a thread per worker submits and waits), so the
    time limit measures parsing, not queueing. When a parse passes the limit its process cannot
    be interrupted, so every worker of the pool is killed and a fresh pool replaces it; parses
    that were running next to it in the old pool are resubmitted once. Workers are started with
    ``spawn`` (not ``fork``): the daemon has threads, and forking a threaded process can copy a
    held lock into the child.
    """

    def __init__(self, workers: int = 0, *, timeout_s: float = 20.0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="parse")
        self._generation = 0
        self._executor = self._start()
        self.replaced = 0  # how many times a pool was killed and replaced (for reports/tests)

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        for future in [executor.submit(_warm) for _ in range(self.workers)]:
            future.result(timeout=120)
        return executor

    async def parse(
        self,
        body: bytes,
        *,
        url: str,
        content_type: str = "",
        fetched_at: datetime,
        default_language: str = "",
    ) -> ParsedFeed:
        """Parse in a worker process; raises :class:`ParseError` on bad input or timeout."""
        loop = asyncio.get_running_loop()
        kwargs = {
            "url": url,
            "content_type": content_type,
            "fetched_at": fetched_at,
            "default_language": default_language,
        }
        return await loop.run_in_executor(self._threads, self._run, (body,), kwargs)

    def parse_blocking(self, body: bytes, **kwargs: Any) -> ParsedFeed:
        """The same as :meth:`parse`, for callers without an event loop."""
        parsed: ParsedFeed = self._run((body,), kwargs)
        return parsed

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run another CPU-heavy function of untrusted input (``fn`` must be a module-level
        function) in a worker, under the same time limit; e.g. article extraction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, args, {}, fn)

    @metrics.PARSE_SECONDS.time()
    def _run(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], fn: Callable[..., Any] = parse_feed
    ) -> Any:
        for _attempt in range(3):
            with self._lock:
                executor, generation = self._executor, self._generation
            future = executor.submit(fn, *args, **kwargs)
            try:
                return future.result(timeout=self.timeout_s)
            except FutureTimeout:
                self._replace(generation)
                what = "parsing" if fn is parse_feed else fn.__name__
                raise ParseError(
                    f"{what} took longer than {self.timeout_s:g}s; the parser was stopped"
                ) from None
            except BrokenProcessPool:
                with self._lock:
                    innocent = self._generation != generation
                if not innocent:  # this parse itself killed its worker (crash, out of memory)
                    self._replace(generation)
                    raise ParseError("the parser process died while parsing") from None
        raise ParseError("the parser pool kept being replaced; try again next poll")

    def _replace(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            old = self._executor
            # ProcessPoolExecutor cannot cancel a running task: kill its processes (private
            # attribute, stable since 3.2), then build a new pool.
            for process in list((getattr(old, "_processes", None) or {}).values()):
                process.kill()
            old.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            self._generation += 1
            self.replaced += 1

    def close(self) -> None:
        """Stop the workers; Runtime.close() calls this."""
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._threads.shutdown(wait=True)
