"""Polling stage: claim due feeds, fetch, parse, store new articles, reschedule each feed."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    feeds_polled: int = 0
    feeds_failed: int = 0
    not_modified: int = 0
    articles_stored: int = 0


def poll_due(runtime: Runtime) -> PollReport:
    """Poll every feed whose next poll time has come. NOT BUILT YET (issue 3)."""
    return PollReport()
