"""The one exception tree of ``monitor``.

Code inside the package raises these; only the edges (CLI, HTTP API, daemon log lines) turn
them into messages, status codes or exit codes::

    MonitorError                 anything monitor raises on purpose
    ├── ConfigError              config.toml is unreadable, malformed or invalid
    ├── DatabaseError            the database cannot be opened, migrated or is owned by another daemon
    ├── FetchError               one feed could not be fetched (carries the feed URL)
    │   ├── FetchTimeout         connect/read/total time limit passed
    │   ├── ResponseTooLarge     the body (or its decompressed form) passed the size limit
    │   └── TooManyRedirects     the redirect limit was reached or a loop was found
    ├── ParseError               feed bytes could not be turned into entries
    ├── ModelError               the embedding model could not be loaded or run
    ├── DeliveryError            an alert could not be delivered through a channel
    │   └── PermanentDeliveryError  retrying will not help (bad address, 4xx other than 429)
    └── NotFoundError            a user asked for a feed, topic, article or match that does not exist
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is unreadable or invalid; the message names file, line and field."""


class DatabaseError(MonitorError):
    """The database cannot be opened, migrated, or is owned by another daemon."""


class FetchError(MonitorError):
    """One feed could not be fetched."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class FetchTimeout(FetchError):
    """A connect, read or total time limit passed."""


class ResponseTooLarge(FetchError):
    """The body passed the configured size limit while streaming."""


class TooManyRedirects(FetchError):
    """The redirect limit was reached, or a redirect loop was found."""


class ParseError(MonitorError):
    """Feed bytes could not be turned into entries."""


class ModelError(MonitorError):
    """The embedding model could not be loaded or run."""


class DeliveryError(MonitorError):
    """An alert could not be delivered; the delivery stays queued and is retried."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help (for example a 400 from a webhook); the delivery fails at once."""


class NotFoundError(MonitorError):
    """A feed, topic, article or match that was asked for does not exist."""
