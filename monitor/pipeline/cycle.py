"""The order of stages, written once (:data:`STAGES`): poll -> full text -> match -> deliver.

The daemon runs each as its own periodic job (so a long embedding backlog never holds up
polling), in this order at start-up; ``run_once`` chains them for ``--once`` and the demo. A new
stage is one function ``(Runtime) -> report`` added here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from monitor.logs import event
from monitor.pipeline.delivery import DispatchReport, dispatch_due
from monitor.pipeline.fulltext import FullTextReport, fetch_full_texts
from monitor.pipeline.matching import MatchReport, match_new
from monitor.pipeline.polling import PollReport, poll_due
from monitor.pipeline.runtime import Runtime
from monitor.store import db, queries

log = logging.getLogger(__name__)

Stage = Callable[[Runtime], object]


@dataclass
class CycleReport:
    poll: PollReport
    full_text: FullTextReport
    match: MatchReport
    delivery: DispatchReport


def run_once(runtime: Runtime) -> CycleReport:
    """One full cycle: poll everything due, match all new articles, deliver what is due."""
    reports = {name: stage(runtime) for name, stage in STAGES}
    poll = cast(PollReport, reports["poll"])
    full_text = cast(FullTextReport, reports["fulltext"])
    match = cast(MatchReport, reports["match"])
    delivery = cast(DispatchReport, reports["deliver"])
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
        queries.heartbeat(session, runtime.worker_id, runtime.clock.now())


# (job name, stage) in pipeline order; the heartbeat first, so a tick is recorded even when a
# stage then takes long
STAGES: tuple[tuple[str, Stage], ...] = (
    ("heartbeat", beat),
    ("poll", poll_due),
    ("fulltext", fetch_full_texts),
    ("match", match_new),
    ("deliver", dispatch_due),
)
