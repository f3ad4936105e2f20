"""The order of stages: poll -> full text -> match -> deliver. The daemon runs them as separate periodic jobs
(so a long embedding backlog never holds up polling); ``run_once`` chains them for ``--once``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.logs import event
from monitor.pipeline.delivery import DispatchReport, dispatch_due
from monitor.pipeline.fulltext import FullTextReport, fetch_full_texts
from monitor.pipeline.matching import MatchReport, match_new
from monitor.pipeline.polling import PollReport, poll_due
from monitor.pipeline.runtime import Runtime
from monitor.store import db, queries

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    poll: PollReport
    full_text: FullTextReport
    match: MatchReport
    delivery: DispatchReport


def run_once(runtime: Runtime) -> CycleReport:
    """One full cycle: poll everything due, match all new articles, deliver what is due."""
    beat(runtime)
    poll = poll_due(runtime)
    full_text = fetch_full_texts(runtime)
    match = match_new(runtime)
    delivery = dispatch_due(runtime)
    event(
        log,
        logging.INFO,
        "cycle finished",
        feeds_polled=poll.feeds_polled,
        feeds_failed=poll.feeds_failed,
        articles_stored=poll.articles_stored,
        matched=match.matched,
        alerts_sent=delivery.sent,
    )
    return CycleReport(poll, full_text, match, delivery)


def beat(runtime: Runtime) -> None:
    """Heartbeat: /healthz reports healthy only while this keeps happening."""
    with db.session_scope(runtime.sessions) as session:
        queries.heartbeat(session, runtime.worker_id)
