"""Slack incoming webhooks with Block Kit; 429 answers carry Retry-After, which the outbox
honours. Slack itself ignores the Idempotency-Key header: see notes on exactly-once.

A message that does not fit in one Slack message (a digest of more than
``render.SLACK_ALERTS_PER_MESSAGE`` alerts not already split by the pipeline) is posted as
several, in order; if one of them fails, the retry posts all of them again, so Slack can show
the first ones twice. Digests queued by the pipeline are split into one delivery per part
beforehand, so there a retry resends only the part that failed.
"""

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
        """Post each Slack message of ``message`` in turn; stop at the first failure."""
        for number, payload in enumerate(render.slack_payloads(message), start=1):
            http.post_json(
                self.config.url.get_secret_value(),
                payload,
                key=key if number == 1 else f"{key}-part{number}",
                timeout_s=self.config.timeout,
            )
