"""robots.txt for article pages: fetched with the project's fetcher, cached per host.

Feeds are meant to be fetched by programs, so feed polling does not ask robots.txt; an article
page is a page for people, so the full-text stage asks before fetching one (RFC 9309):

* a ``2xx`` robots.txt is parsed with :mod:`urllib.robotparser` and obeyed for our User-Agent
  (``monitor``) or ``*``;
* a ``4xx`` answer (no robots.txt) allows everything;
* a ``5xx``, ``429`` or network failure disallows everything for the host until it is asked
  again, :data:`ERROR_TTL_S` later (the RFC's "unreachable" rule);
* an answer is kept :data:`TTL_S` (a day, the RFC's upper bound) and then fetched again.

The cache holds plain values (parsed rules, expiry times), lives for the process, and is safe to
use from successive event loops (one per stage run).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from monitor.domain import FeedRef
from monitor.feeds.fetch import Fetcher

TTL_S = 24 * 3600.0
ERROR_TTL_S = 600.0
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: parse at least 500 KiB; we parse at most that


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str = ""


@dataclass(slots=True)
class _Rules:
    parser: RobotFileParser | None  # None: a blanket verdict, see ``blanket``
    blanket: bool
    expires: float
    note: str = ""


class RobotsCache:
    """Per-host robots.txt rules with expiry; :meth:`check` fetches them when missing."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._rules: dict[str, _Rules] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def check(self, fetcher: Fetcher, url: str) -> Verdict:
        """May ``url`` be fetched? Fetches the host's robots.txt first when not cached."""
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme, parts.netloc.lower(), "", "", ""))
        async with self._lock_for(origin):
            rules = self._rules.get(origin)
            if rules is None or rules.expires <= time.monotonic():
                rules = await self._fetch(fetcher, origin)
                self._rules[origin] = rules
        if rules.parser is not None:
            if rules.parser.can_fetch(self.user_agent, url):
                return Verdict(True)
            return Verdict(False, "robots.txt disallows this page")
        return Verdict(rules.blanket, "" if rules.blanket else rules.note)

    def _lock_for(self, origin: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # locks belong to one loop; each stage run has its own
            self._loop, self._locks = loop, {}
        return self._locks.setdefault(origin, asyncio.Lock())

    async def _fetch(self, fetcher: Fetcher, origin: str) -> _Rules:
        result = await fetcher.fetch(FeedRef(id=0, url=f"{origin}/robots.txt"))
        now = time.monotonic()
        if result.ok and result.status is not None and 200 <= result.status < 300:
            parser = RobotFileParser()
            text = (result.body or b"")[:MAX_ROBOTS_BYTES].decode("utf-8", "replace")
            parser.parse(text.splitlines())
            return _Rules(parser, True, now + TTL_S)
        if result.status is not None and 400 <= result.status < 500 and result.status != 429:
            return _Rules(None, True, now + TTL_S)  # no robots.txt: everything is allowed
        note = f"robots.txt unreachable ({result.error or result.status}); retried later"
        return _Rules(None, False, now + ERROR_TTL_S, note[:300])
