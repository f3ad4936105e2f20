"""Slack incoming webhooks with Block Kit; 429 answers carry Retry-After, which the outbox
honours. Slack itself ignores the Idempotency-Key header: see notes on exactly-once."""

from __future__ import annotations

from monitor.alert import http, register, render
from monitor.alert.message import Message
from monitor.config import ChannelConfig


@register("slack")
class SlackChannel:
    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    def send(self, message: Message, key: str) -> None:
        http.post_json(
            self.config.url.get_secret_value(),
            render.slack_payload(message),
            key=key,
            timeout_s=self.config.timeout,
        )
