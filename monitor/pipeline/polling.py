"""Polling stage: claim due feeds, fetch, parse, store new articles, reschedule each feed.

One call of :func:`poll_due` runs one asyncio loop:

* feeds are claimed from the database in batches under a lease (the row decides what is due);
* each claimed feed is fetched concurrently (``feeds.fetch.Fetcher`` bounds the global and
  per-host concurrency), parsed in the parser process pool (kept in ``runtime.resources``),
  and its result written by ONE database thread, one short transaction per feed, so SQLite
  never sees two writers and the event loop never blocks on the database;
* every outcome is recorded on the feed row with its next poll time (``feeds.schedule``);
  a failure is one ``key=value`` log line and never stops the others.

The first successful poll of a feed stores its entries as history (``is_history``): they are
what the feed already held when we subscribed, and must never alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from monitor.domain import FeedRef, FetchResult, ParsedFeed
from monitor.errors import ParseError
from monitor.feeds import schedule
from monitor.feeds.fetch import Fetcher
from monitor.feeds.language import detect_language
from monitor.feeds.parse import ParserPool
from monitor.logs import event
from monitor.pipeline.runtime import Runtime
from monitor.store import db, polling

log = logging.getLogger(__name__)

BATCHES_IN_FLIGHT = 8  # claim this many times `concurrency` feeds at once
WRITE_BATCH = 100  # most feed results written in one transaction
T = TypeVar("T")
_Write = tuple[FeedRef, "polling.PollOutcome", ParsedFeed | None, "asyncio.Future[int]"]


@dataclass
class PollReport:
    feeds_polled: int = 0
    feeds_failed: int = 0
    not_modified: int = 0
    articles_stored: int = 0


def parser_pool(runtime: Runtime) -> ParserPool:
    """The runtime's parser process pool, started on first use and closed with the runtime."""
    if runtime.resources.parser_pool is None:
        cfg = runtime.config.polling
        runtime.resources.parser_pool = ParserPool(cfg.parse_workers, timeout_s=cfg.parse_timeout)
    return runtime.resources.parser_pool


def poll_due(runtime: Runtime) -> PollReport:
    """Poll every feed whose next poll time has come; return what happened."""
    report = PollReport()
    if runtime.stop.is_set():
        return report
    poller = _Poller(runtime, parser_pool(runtime), report)
    asyncio.run(poller.run())
    return report


def _plain_not_modified(outcome: polling.PollOutcome) -> bool:
    """A 304 that changes nothing but scheduling columns (the cheap batched UPDATE)."""
    return outcome.not_modified and not outcome.error and not outcome.new_url


class _Poller:
    """One polling run: the fetcher, the database thread and the bookkeeping."""

    def __init__(self, runtime: Runtime, pool: ParserPool, report: PollReport) -> None:
        self.runtime, self.pool, self.report = runtime, pool, report
        self.cfg = runtime.config.polling
        self.batch = max(self.cfg.concurrency * BATCHES_IN_FLIGHT, 64)
        # a lease must outlive the slowest feed of a batch, or another worker could take it
        self.lease_s = max(
            runtime.config.database.lease,
            self.cfg.total_timeout * BATCHES_IN_FLIGHT + self.cfg.parse_timeout,
        )
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix="poll-db")
        self.started = self.runtime.clock.now()  # one run polls what was due when it started, once
        self._writes: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        # feed id -> monotonic time after which starting its fetch could outlive the lease
        self._start_by: dict[int, float] = {}

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    async def run(self) -> None:
        try:
            async with Fetcher(self.cfg) as fetcher:
                await self._drain(fetcher)
        finally:
            self.db_thread.shutdown(wait=True)

    async def _drain(self, fetcher: Fetcher) -> None:
        pending: set[asyncio.Task[None]] = set()
        exhausted = False
        while True:
            if not exhausted and len(pending) < self.batch // 2 and not self.runtime.stop.is_set():
                feeds = await self._db(self._claim)
                exhausted = len(feeds) < self.batch
                pending |= {asyncio.create_task(self._poll_one(fetcher, f)) for f in feeds}
            if not pending:
                return
            _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    def _claim(self) -> list[FeedRef]:
        with db.session_scope(self.runtime.sessions) as session:
            feeds = polling.claim_due(
                session,
                self.runtime.worker_id,
                now=self.runtime.clock.now(),
                lease_s=self.lease_s,
                limit=self.batch,
                due_before=self.started,
            )
        # a fetch started later than this could still run when the lease ends, and another
        # worker could then poll the same feed: such a feed is released and claimed afresh
        start_by = time.monotonic() + self.lease_s - self.cfg.total_timeout - self.cfg.parse_timeout
        self._start_by.update((f.id, start_by - 5.0) for f in feeds)
        return feeds

    def _should_skip(self, feed: FeedRef) -> bool:
        """Stop requested, or the lease is too close to its end to start this fetch."""
        late = time.monotonic() > self._start_by.get(feed.id, float("inf"))
        return self.runtime.stop.is_set() or late

    async def _poll_one(self, fetcher: Fetcher, feed: FeedRef) -> None:
        if self.runtime.stop.is_set():
            await self._db(self._release, feed)
            return
        now = self.runtime.clock.now()
        try:
            result = await fetcher.fetch(feed, should_stop=lambda: self._should_skip(feed))
            if result.skipped:
                await self._db(self._release, feed)
                return
            parsed, error = await self._parse(feed, result, now)
            outcome = self._outcome(feed, result, parsed, error, now)
            stored = await self._write(feed, outcome, parsed)
        except Exception as exc:  # the loop never dies: record it on the feed and go on
            log.exception("feed poll crashed", extra={"fields": {"feed_id": feed.id}})
            error = f"internal error: {type(exc).__name__}: {exc}"
            outcome = self._failure_outcome(feed, None, error, now, retry_after_s=None)
            result, stored = FetchResult(url=feed.url, status=None, error=error), 0
            try:
                await self._db(self._store, feed, outcome, None)
            except Exception as again:  # the database itself is failing: the lease expires
                event(
                    log,
                    logging.ERROR,
                    "feed result not recorded",
                    feed_id=feed.id,
                    url=feed.url,
                    error=str(again),
                )
        self._account(feed, result, outcome, stored)

    async def _parse(
        self, feed: FeedRef, result: FetchResult, now: datetime
    ) -> tuple[ParsedFeed | None, str]:
        if result.error or result.body is None:
            return None, result.error
        try:
            parsed = await self.pool.parse(
                result.body,
                url=result.final_url or feed.url,
                content_type=result.content_type,
                fetched_at=now,
                default_language=feed.language,
            )
        except ParseError as exc:
            return None, f"parse error: {exc}"
        return parsed, ""

    def _outcome(
        self,
        feed: FeedRef,
        result: FetchResult,
        parsed: ParsedFeed | None,
        error: str,
        now: datetime,
    ) -> polling.PollOutcome:
        if error:
            return self._failure_outcome(
                feed,
                result.status,
                error,
                now,
                retry_after_s=result.retry_after_s,
                gone=result.gone,
            )
        bounds = schedule.Bounds.from_config(self.cfg, feed.interval_s)
        ttl_s = parsed.ttl_s if parsed is not None else feed.ttl_s
        next_at = schedule.next_poll_after_success(
            now, bounds, ttl_s=ttl_s, max_age_s=result.max_age_s, spread=not feed.has_succeeded
        )
        return polling.PollOutcome(
            now=now,
            status=result.status,
            next_poll_at=next_at,
            not_modified=result.not_modified,
            etag=result.etag,
            last_modified=result.last_modified,
            ttl_s=ttl_s,
            new_url=result.permanent_redirect_url,
            title=parsed.title if parsed else "",
            site_url=parsed.site_url if parsed else "",
            language=parsed.language if parsed else "",
        )

    def _failure_outcome(
        self,
        feed: FeedRef,
        status: int | None,
        error: str,
        now: datetime,
        *,
        retry_after_s: float | None,
        gone: bool = False,
    ) -> polling.PollOutcome:
        bounds = schedule.Bounds.from_config(self.cfg, feed.interval_s)
        next_at = schedule.next_poll_after_error(
            now, bounds, feed.consecutive_errors + 1, retry_after_s=retry_after_s
        )
        return polling.PollOutcome(
            now=now, status=status, next_poll_at=next_at, error=error, gone=gone
        )

    async def _write(
        self, feed: FeedRef, outcome: polling.PollOutcome, parsed: ParsedFeed | None
    ) -> int:
        """Queue one feed's result for the database thread; return how many articles it stored.

        Results that finish while the thread is busy are written together in one transaction
        (a commit per feed was the largest cost of a 1,000-feed cycle on SQLite)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._writes.append((feed, outcome, parsed, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._writes:
            batch, self._writes = self._writes[:WRITE_BATCH], self._writes[WRITE_BATCH:]
            try:
                results = await self._db(self._store_many, [(f, o, p) for f, o, p, _ in batch])
            except Exception as exc:  # the thread itself failed: every waiter hears of it
                results = [exc] * len(batch)
            for (*_, done), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def _store_many(
        self, items: list[tuple[FeedRef, polling.PollOutcome, ParsedFeed | None]]
    ) -> list[int | Exception]:
        try:
            with db.session_scope(self.runtime.sessions) as session:
                unchanged = [(f.id, o) for f, o, _p in items if _plain_not_modified(o)]
                polling.record_not_modified_many(session, self.runtime.worker_id, unchanged)
                return [
                    0 if _plain_not_modified(o) else self._store_in(session, f, o, p)
                    for f, o, p in items
                ]
        except Exception as exc:  # one bad row must not lose the batch: retry one at a time
            event(
                log,
                logging.WARNING,
                "batch write failed; writing feeds one by one",
                feeds=len(items),
                error=str(exc),
            )
        results: list[int | Exception] = []
        for item in items:
            try:
                results.append(self._store(*item))
            except Exception as exc:
                results.append(exc)
        return results

    def _store(self, feed: FeedRef, outcome: polling.PollOutcome, parsed: ParsedFeed | None) -> int:
        with db.session_scope(self.runtime.sessions) as session:
            return self._store_in(session, feed, outcome, parsed)

    def _store_in(
        self,
        session: Session,
        feed: FeedRef,
        outcome: polling.PollOutcome,
        parsed: ParsedFeed | None,
    ) -> int:
        stored = 0
        if parsed is not None and parsed.entries:
            stored = polling.store_entries(
                session,
                feed.id,
                parsed.entries,
                is_history=not feed.has_succeeded,
                fetched_at=outcome.now,
                detect_language=detect_language,
                full_text=feed.full_text,
            )
        polling.record_outcome(session, feed.id, self.runtime.worker_id, outcome)
        return stored

    def _release(self, feed: FeedRef) -> None:
        with db.session_scope(self.runtime.sessions) as session:
            polling.release(session, [feed.id], self.runtime.worker_id)

    def _account(
        self, feed: FeedRef, result: FetchResult, outcome: polling.PollOutcome, stored: int
    ) -> None:
        report = self.report
        report.feeds_polled += 1
        report.articles_stored += stored
        if outcome.error:
            report.feeds_failed += 1
            event(
                log,
                logging.WARNING,
                "feed poll failed",
                feed_id=feed.id,
                url=feed.url,
                status=outcome.status,
                error=outcome.error,
                errors_in_row=feed.consecutive_errors + 1,
                next_poll=outcome.next_poll_at.isoformat(timespec="seconds"),
                disabled=outcome.gone,
            )
            return
        if result.not_modified:
            report.not_modified += 1
        if outcome.new_url and outcome.new_url != feed.url:
            event(
                log,
                logging.INFO,
                "feed moved permanently; polling the new location",
                feed_id=feed.id,
                url=feed.url,
                new_url=outcome.new_url,
                status=outcome.status,
            )
        event(
            log,
            logging.DEBUG,
            "feed polled",
            feed_id=feed.id,
            status=outcome.status,
            stored=stored,
            elapsed_s=round(result.elapsed_s, 3),
        )
