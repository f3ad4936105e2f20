"""One JSON POST with a time limit, turned into DeliveryError / PermanentDeliveryError.

Shared by the Slack and webhook channels: 2xx is success; 429 and 5xx (and 408) are retried,
honouring ``Retry-After``; any other status is permanent. The error message carries the status
and the start of the body, because that is what a user needs to fix a webhook.
"""

from __future__ import annotations

import json
import ssl
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.alert import netdiag
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.http_headers import parse_retry_after
from monitor.redact import redact_text, redact_url

BODY_IN_ERROR = 300


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every send: loading the CA bundle costs ~0.1 s each time."""
    return ssl.create_default_context()


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    key: str,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """POST ``payload`` (or the pre-serialised ``body``) with the idempotency key header."""
    data = body if body is not None else json.dumps(payload, ensure_ascii=False).encode()
    all_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"monitor/{__version__}",
        "Idempotency-Key": key,
        **(headers or {}),
    }
    # host[:port] only: the userinfo (user:password@) and the path (Slack's token) stay out
    host = urlsplit(url).netloc.rpartition("@")[2] or redact_url(url)
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, verify=tls_context()
        ) as client:
            response = client.post(url, content=data, headers=all_headers)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"timeout: no answer from {host} within {timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        # httpx's own text can quote the whole URL
        raise DeliveryError(redact_text(netdiag.describe(exc, host))) from exc
    check_status(response, host, url)
    return response


def check_status(response: httpx.Response, host: str, url: str = "") -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    # a body may quote the request path (Express: "Cannot POST /services/T01/B02/<token>")
    text = redact_text(" ".join(response.text[:BODY_IN_ERROR].split()), secrets=[url])
    message = f"HTTP {status} from {host}: {text or '(empty body)'}"
    if status == 429 or status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise DeliveryError(message, retry_after_s=retry_after)
    raise PermanentDeliveryError(message)
