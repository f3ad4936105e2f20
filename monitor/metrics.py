"""Duration histograms of the pipeline stages, in prometheus_client's default registry.

A stage observes its histogram where the work happens (``with EMBED_SECONDS.time(): ...``, or
``@PARSE_SECONDS.time()`` on a method); ``/metrics`` shows them next to the counts it reads
from the database. They live in the process that did the work, so they have values when the
API runs inside ``monitor run`` (``api.enabled``); a separate ``monitor serve`` polls and sends
nothing (only its search queries are embedded).

A leaf module (only prometheus_client), so every stage may import it without importing another.
"""

from __future__ import annotations

from prometheus_client import Histogram

__all__ = ["DELIVER_SECONDS", "EMBED_SECONDS", "FETCH_SECONDS", "PARSE_SECONDS"]

# from a cached 304 (milliseconds) to a fetch at the 60 s total timeout
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

FETCH_SECONDS = Histogram(
    "monitor_fetch_duration_seconds",
    "Time to fetch one feed: connection, redirects and body, failures included.",
    buckets=BUCKETS,
)
PARSE_SECONDS = Histogram(
    "monitor_parse_duration_seconds",
    "Time to parse one feed body in the parser pool, waiting for a worker included.",
    buckets=BUCKETS,
)
EMBED_SECONDS = Histogram(
    "monitor_embed_duration_seconds",
    "Time of one embedding call (a batch of article, topic or query texts).",
    buckets=BUCKETS,
)
DELIVER_SECONDS = Histogram(
    "monitor_deliver_duration_seconds",
    "Time to send one alert, digest or notice through its channel, failures included.",
    buckets=BUCKETS,
)
