"""The default channel: print the alert, so a fresh install works without credentials."""

from __future__ import annotations

import sys

from monitor.alert import register, render
from monitor.alert.message import Message
from monitor.config import ChannelConfig


@register("console")
class ConsoleChannel:
    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    def send(self, message: Message, key: str) -> None:
        """Write subject and text body to stdout, flushed so a pipe sees it at once."""
        out = sys.stdout
        out.write(f"=== {render.subject(message)}\n{render.email_text(message)}\n")
        out.flush()
