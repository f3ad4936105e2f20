"""Delivery stage: send due outbox rows through their channels, retry with backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0


def dispatch_due(runtime: Runtime) -> DispatchReport:
    """Send pending deliveries. NOT BUILT YET (issue 5)."""
    return DispatchReport()
