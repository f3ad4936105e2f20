"""The article behind a web page: fetch it politely, keep its body, drop everything around it.

``monitor topics add --seed-url`` and per-feed full text (``full_text = true``) need the text a reader came
for, not the page: navigation menus, comment sections, cookie banners, share buttons and footers
would become exemplar passages and make a topic match the site instead of the story. The body is
found by trafilatura (the only module that imports it), with comments and tables left out and
precision favoured over recall: a seed article with one paragraph too few still defines its
story, one with the site's menu in it does not.

The page is fetched with :class:`monitor.feeds.fetch.Fetcher`, so the polling limits hold here
too: ``polling.max_body_bytes`` (counted after decompression), the connect, read and total
timeouts, and ``polling.max_redirects`` with loop detection and http(s) only.

Failures are one :class:`~monitor.errors.MonitorError` each, worded for a person:
:class:`FetchError` (bad URL, unreachable host, HTTP error status, too large, too slow) and
:class:`ParseError` (not an HTML page, or no article text in it).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.config import PollingConfig
from monitor.domain import FeedRef, FetchResult
from monitor.errors import FetchError, ParseError
from monitor.feeds.fetch import Fetcher

# Fewer characters of body than this is a teaser, a paywall stub or a page of links, not an
# article: nothing a topic can be built on.
MIN_ARTICLE_CHARS = 200
MAX_BODY_CHARS = 100_000  # stored body; a longer "article" is a page of something else
LEAD_CHARS = 1_500  # enough for any model's max_seq_length (the tokenizer cuts the rest)
THIN_SUMMARY_CHARS = 200  # a summary shorter than this, or of one sentence, is "one line"
_SENTENCE_END = re.compile(r"[.!?。！？…](?:[\"'»”)\]]*)(?:\s|$)")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHARSET = re.compile(r"charset\s*=\s*([^\s;]+)", re.I)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


@dataclass(frozen=True)
class ExtractedArticle:
    """The readable part of a page: its headline (may be empty) and its body paragraphs."""

    url: str
    title: str
    paragraphs: tuple[str, ...]

    def as_text(self) -> str:
        """Plain text for a seed file: the headline, then one paragraph per line.

        Paragraphs are separated by blank lines; :func:`monitor.scoring.split_passages` reads a
        short unpunctuated line (the headline, a subheading) as the heading of what follows.
        """
        lines = ([self.title] if self.title else []) + list(self.paragraphs)
        return "\n\n".join(lines) + "\n"


def is_html(body: bytes, content_type: str) -> bool:
    """True for an HTML page: by its declared type, else (no type given) by how it starts."""
    kind = content_type.lower().split(";")[0].strip()
    if kind:
        return kind in HTML_TYPES
    return bool(_HTML_START.match(body[:4096]))


def extract_article(body: bytes | str, url: str = "", content_type: str = "") -> ExtractedArticle:
    """The article in an HTML page; :class:`ParseError` when it holds no article text.

    The charset the server names in ``Content-Type`` wins (as in browsers); without one,
    trafilatura decodes the bytes itself (``<meta charset>``, then detection, which takes a
    short Polish page in ISO-8859-2 for something else).
    """
    import trafilatura  # imported where it runs (parser workers, `topics add`), not at start-up

    document = trafilatura.bare_extraction(
        _decoded(body, content_type),
        url=url or None,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        with_metadata=True,
    )
    title = " ".join(_paragraphs(str(getattr(document, "title", "") or ""), ""))
    raw = str(getattr(document, "text", "") or "") if document is not None else ""
    paragraphs = _paragraphs(raw, title)
    if sum(len(p) for p in paragraphs) < MIN_ARTICLE_CHARS:
        where = url or "the page"
        raise ParseError(
            f"{where}: no article text found (fewer than {MIN_ARTICLE_CHARS} characters of body "
            "once navigation, comments and banners are left out)"
        )
    return ExtractedArticle(url=url, title=title, paragraphs=tuple(paragraphs))


def _decoded(body: bytes | str, content_type: str) -> bytes | str:
    """The page as text in the charset its ``Content-Type`` names, else the bytes as they are."""
    if isinstance(body, str):
        return body
    match = _CHARSET.search(content_type)
    if match:
        try:
            return body.decode(match.group(1).strip("\"'"))
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown or wrong charset: let trafilatura detect it
    return body


def _paragraphs(text: str, title: str) -> list[str]:
    """Non-empty lines with whitespace folded and control characters (terminal escapes) gone;
    a first line repeating the headline is dropped."""
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if lines and title and lines[0].casefold() == title.casefold():
        lines = lines[1:]
    return lines


def check_url(url: str) -> str:
    """The URL stripped, or :class:`FetchError` when it is not an absolute http(s) URL."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f'"{url}" is not an http(s) URL like https://example.org/news/story')
    return url


def fetch_article(url: str, config: PollingConfig) -> ExtractedArticle:
    """Fetch ``url`` with the polling limits and extract its article.

    Raises :class:`FetchError` when the page cannot be fetched and :class:`ParseError` when it
    is not HTML or holds no article text.
    """
    url = check_url(url)
    result = asyncio.run(_fetch(url, config))
    if result.error or result.body is None:
        raise FetchError(
            f"cannot fetch {url}: {result.error or 'no body'}", url=url, status=result.status
        )
    if not is_html(result.body, result.content_type):
        kind = result.content_type.split(";")[0].strip() or "unknown"
        raise ParseError(f"{url} is not an HTML page (content type {kind})")
    return extract_article(result.body, result.final_url or url, result.content_type)


async def _fetch(url: str, config: PollingConfig) -> FetchResult:
    async with Fetcher(config) as fetcher:
        return await fetcher.fetch(FeedRef(id=0, url=url))


def extract_body(html: str, url: str) -> str | None:
    """The article text of a page (one paragraph a line), or None when it holds none: what the
    full-text stage stores. A module-level function so the parser workers can run it."""
    try:
        article = extract_article(html, url)
    except ParseError:
        return None
    return "\n".join(article.paragraphs)[:MAX_BODY_CHARS]


def is_thin(summary: str) -> bool:
    """Whether a feed summary is "a single line": short, or at most one sentence.

    Such a summary (a teaser, the title again, "Read more…") says too little to embed, so the
    lead of the article's body is embedded and shown instead.
    """
    summary = summary.strip()
    if len(summary) < THIN_SUMMARY_CHARS:
        return True
    return len(_SENTENCE_END.findall(summary)) <= 1


def body_lead(title: str, summary: str, body: str) -> str:
    """What replaces ``summary`` for embedding and display: the body's first paragraphs (its
    headline dropped when it repeats ``title``), up to :data:`LEAD_CHARS` and cut at a sentence
    end; ``""`` when the summary is enough or the body says no more than it."""
    if not is_thin(summary):
        return ""
    paragraphs = [" ".join(p.split()) for p in body.splitlines() if p.strip()]
    if paragraphs and paragraphs[0].casefold() == " ".join(title.split()).casefold():
        paragraphs = paragraphs[1:]
    text = " ".join(paragraphs)
    if len(text) <= len(summary.strip()):
        return ""
    if len(text) <= LEAD_CHARS:
        return text
    cut = text[:LEAD_CHARS]
    ends = [m.end() for m in _SENTENCE_END.finditer(cut)]
    return cut[: ends[-1]].strip() if ends else cut
