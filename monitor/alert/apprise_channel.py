"""Apprise URLs for the long tail (Discord, Telegram, Teams, ntfy, ...): a thin adapter.

Optional: needs ``pip install 'monitor[apprise]'``. Apprise sends a plain-text body and the
``[topic] title`` subject; it cannot carry our idempotency key, so these channels are
at-least-once (a crash mid-send can repeat one alert). Time limits come from the Apprise URL
itself (``?cto=`` connect, ``?rto=`` read, in seconds).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from monitor.alert import register, render
from monitor.alert.message import Message
from monitor.config import ChannelConfig
from monitor.errors import DeliveryError, PermanentDeliveryError


@register("apprise")
class AppriseChannel:
    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    def send(self, message: Message, key: str) -> None:
        try:
            import apprise
        except ImportError:
            raise PermanentDeliveryError(
                "the apprise package is not installed: pip install 'monitor[apprise]'"
            ) from None
        client = apprise.Apprise()
        url = self.config.url.get_secret_value()
        if not client.add(url):
            scheme = urlsplit(url).scheme or "?"
            raise PermanentDeliveryError(
                f"alerts.{self.name}: Apprise does not understand this URL ({scheme}://...)"
            )
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = client.notify(body=render.email_text(message), title=render.subject(message))
        if not ok:
            lines = [ln.split(" - ", 2)[-1] for ln in captured.getvalue().splitlines() if ln]
            raise DeliveryError("apprise: " + (lines[-1] if lines else "the notification failed"))
