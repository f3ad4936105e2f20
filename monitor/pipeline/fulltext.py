"""Full-text stage: fetch the page of each new article of a ``full_text = true`` feed, extract
its body (trafilatura, in the parser worker processes), and store the body and its lead.

Polite: every page goes through :class:`monitor.feeds.fetch.Fetcher` (global and per-host
limits, User-Agent, timeouts, redirects checked, the size cap ``polling.full_text_max_bytes``),
only after the host's robots.txt allows it (:mod:`monitor.feeds.robots`), and conditionally
(the ETag / Last-Modified of an earlier answer are sent back; a ``304`` costs no body).

Never in the way: it is its own daemon job, so polling and matching never wait on it; matching
waits at most ``polling.full_text_wait`` for an article's page and then uses its summary.

What happens when the process dies:

=================================  ==========================================================
killed ...                         then
=================================  ==========================================================
before the article is stored       nothing to do: the body row is written with the article
after it, before a claim           the row is ``pending``: the next run fetches it
while a page is being fetched      the lease runs out (``database.lease``); fetched again
after the fetch, before the write  the same; the fetch was lost, nothing stored twice
after the write                    ``done`` / ``skipped`` / ``failed``: never fetched again
=================================  ==========================================================
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from monitor.domain import FeedRef, FetchResult
from monitor.errors import ParseError
from monitor.feeds.extract import body_lead, extract_body
from monitor.feeds.fetch import Fetcher, user_agent
from monitor.feeds.parse import ParserPool
from monitor.feeds.robots import RobotsCache
from monitor.logs import event
from monitor.pipeline.polling import parser_pool
from monitor.pipeline.runtime import Runtime
from monitor.store import db, fulltext

log = logging.getLogger(__name__)

BATCH = 64  # pages claimed at once
MAX_ATTEMPTS = 4  # transient failures (5xx, timeouts, a page with no text yet) retried so often
RETRY_BASE_S = 120.0  # then 4 min, 8 min ... with a server's Retry-After honoured
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class FullTextReport:
    fetched: int = 0  # pages with an article body stored
    not_modified: int = 0
    retried: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason kind -> count


def fetch_full_texts(runtime: Runtime) -> FullTextReport:
    """Fetch every due article page, batch by batch; never raises for a bad page or host."""
    report = FullTextReport()
    if runtime.resources.robots is None:
        runtime.resources.robots = RobotsCache(user_agent(runtime.config.polling))
    robots = runtime.resources.robots
    lease_s = max(runtime.config.database.lease, runtime.config.polling.total_timeout * 4)
    while not runtime.stop.is_set():
        with db.session_scope(runtime.sessions) as session:
            jobs = fulltext.claim_pages(
                session, runtime.worker_id, now=runtime.clock.now(), lease_s=lease_s, limit=BATCH
            )
        if not jobs:
            break
        outcomes = asyncio.run(_Pages(runtime, robots, parser_pool(runtime), report).run(jobs))
        with db.session_scope(runtime.sessions) as session:
            fulltext.record_pages(session, runtime.worker_id, outcomes)
    return report


class _Pages:
    """One batch of pages in one event loop: fetch, check, extract."""

    def __init__(
        self, runtime: Runtime, robots: RobotsCache, pool: ParserPool, report: FullTextReport
    ) -> None:
        self.runtime, self.robots, self.pool, self.report = runtime, robots, pool, report
        cfg = runtime.config.polling
        self.cfg = cfg.model_copy(update={"max_body_bytes": cfg.full_text_max_bytes})

    async def run(self, jobs: list[fulltext.PageJob]) -> list[fulltext.PageOutcome]:
        async with Fetcher(self.cfg) as fetcher:
            return list(await asyncio.gather(*(self._guarded(fetcher, job) for job in jobs)))

    async def _guarded(self, fetcher: Fetcher, job: fulltext.PageJob) -> fulltext.PageOutcome:
        """The loop never dies: a bug met on one page counts as a failed attempt of that page
        (so a page that always trips it is given up), never as the whole batch's failure."""
        try:
            return await self._one(fetcher, job)
        except Exception as exc:
            log.exception("article page crashed", extra={"fields": {"article_id": job.article_id}})
            return self._retry(job, f"internal error: {type(exc).__name__}: {exc}", None)

    async def _one(self, fetcher: Fetcher, job: fulltext.PageJob) -> fulltext.PageOutcome:
        if not _http_url(job.url):
            return self._skip(job, "link", "the article link is not an http(s) URL")
        verdict = await self.robots.check(fetcher, job.url)
        if not verdict.allowed:
            if verdict.reason.startswith("robots.txt unreachable"):
                return self._retry(job, verdict.reason, None)
            return self._skip(job, "robots", verdict.reason)
        ref = FeedRef(
            id=job.article_id, url=job.url, etag=job.etag, last_modified=job.last_modified
        )
        result = await fetcher.fetch(ref)
        if result.too_large:
            return self._skip(job, "too_large", result.error)
        if result.not_modified:  # unchanged since an attempt that found no article text
            self.report.not_modified += 1
            return self._skip(job, "no_text", "no article text on the page (unchanged, 304)")
        if result.error:
            return self._failed_fetch(job, result)
        return await self._extract(job, result)

    def _failed_fetch(self, job: fulltext.PageJob, result: FetchResult) -> fulltext.PageOutcome:
        status = result.status or 0
        if 400 <= status < 500 and status not in (408, 429):
            return self._skip(job, "http", result.error)
        return self._retry(job, result.error, result.retry_after_s)

    async def _extract(self, job: fulltext.PageJob, result: FetchResult) -> fulltext.PageOutcome:
        content_type = result.content_type.split(";")[0].strip().lower()
        if content_type and content_type not in HTML_TYPES:
            return self._skip(job, "not_html", f"not an HTML page ({content_type})")
        html = (result.body or b"").decode(_charset(result.content_type), "replace")
        try:
            body = await self.pool.call(extract_body, html, result.final_url or job.url)
        except ParseError as exc:
            return self._retry(job, f"extraction failed: {exc}", None)
        if not body:  # kept for a retry: some sites fill the page after the feed item
            return self._retry(job, "no article text on the page", None, result)
        self.report.fetched += 1
        return fulltext.PageOutcome(
            job.article_id,
            fulltext.DONE,
            self.runtime.clock.now(),
            body=body,
            lead=body_lead(job.title, job.summary, body),
            etag=result.etag,
            last_modified=result.last_modified,
            fetched_at=self.runtime.clock.now(),
        )

    def _skip(self, job: fulltext.PageJob, kind: str, reason: str) -> fulltext.PageOutcome:
        self.report.skipped[kind] += 1
        event(
            log,
            logging.INFO,
            "article page skipped",
            article_id=job.article_id,
            url=job.url,
            reason=reason,
        )
        return fulltext.PageOutcome(
            job.article_id, fulltext.SKIPPED, self.runtime.clock.now(), reason=reason
        )

    def _retry(
        self,
        job: fulltext.PageJob,
        reason: str,
        retry_after_s: float | None,
        answer: FetchResult | None = None,
    ) -> fulltext.PageOutcome:
        """Try again later (backing off), or give up after :data:`MAX_ATTEMPTS`; ``answer``'s
        validators are kept so the next try is a conditional GET."""
        etag = answer.etag if answer else None
        last_modified = answer.last_modified if answer else None
        attempts = job.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self.report.failed += 1
            event(
                log,
                logging.WARNING,
                "article page given up",
                article_id=job.article_id,
                url=job.url,
                attempts=attempts,
                error=reason,
            )
            return fulltext.PageOutcome(
                job.article_id,
                fulltext.FAILED,
                self.runtime.clock.now(),
                reason=reason,
                etag=etag,
                last_modified=last_modified,
            )
        self.report.retried += 1
        wait = max(RETRY_BASE_S * 2 ** (attempts - 1), retry_after_s or 0.0)
        return fulltext.PageOutcome(
            job.article_id,
            fulltext.PENDING,
            self.runtime.clock.now() + timedelta(seconds=wait),
            reason=reason,
            etag=etag,
            last_modified=last_modified,
        )


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[broken/": a feed can put anything in <link>
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"
