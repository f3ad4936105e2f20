"""Generic JSON webhook, signed with HMAC-SHA256 so the receiver can trust it.

Headers: ``Idempotency-Key`` (dedupe on it), ``X-Monitor-Timestamp`` (unix seconds) and
``X-Monitor-Signature: sha256=<hex>`` = HMAC-SHA256(secret, ``<timestamp>.<body>``). Signing
the timestamp with the body lets a receiver reject replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from monitor.alert import http, register, render
from monitor.alert.message import Message
from monitor.config import ChannelConfig

SIGNATURE_HEADER = "X-Monitor-Signature"
TIMESTAMP_HEADER = "X-Monitor-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@register("webhook")
class WebhookChannel:
    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    def send(self, message: Message, key: str) -> None:
        body = json.dumps(render.webhook_payload(message, key), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: timestamp}
        secret = self.config.secret.get_secret_value()
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        http.post_json(
            self.config.url.get_secret_value(),
            {},
            key=key,
            timeout_s=self.config.timeout,
            headers=headers,
            body=body,
        )
