"""Matching stage: embed new articles (newest first), score them against topics, record matches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class MatchReport:
    embedded: int = 0
    scored: int = 0
    matched: int = 0


def match_new(runtime: Runtime) -> MatchReport:
    """Embed and score articles not yet matched. NOT BUILT YET (issue 4)."""
    return MatchReport()
