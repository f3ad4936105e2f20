"""Signed, single-purpose values: alert judgement links, per-topic feed read tokens, and the
web forms' CSRF tokens.

An alert carries "relevant" / "not relevant" links that anyone holding the email can open, so
each link signs exactly one action: HMAC-SHA256 over ``<match id>.<verdict>.<expiry>``. A link
cannot be turned into another verdict, another match or a later expiry without the key.

The key is derived from ``api.token`` (the one server secret every worker and the API already
share through the config), with a label of its own, so it is never the token itself, a signature
cannot serve as a session cookie or vice versa, and changing the token revokes every link and
feed token at once. No token, no key: callers then show the CLI command instead of a link.

A form's CSRF token is HMAC-SHA256, under a key of its own label, over the browser's CSRF
cookie (a random nonce) and its login session cookie: it is good for that browser and that
session only, and another site can neither read it nor make one.

A leaf module (stdlib only) so the pipeline that renders alerts and the API that checks the
links import the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

VERDICTS = ("relevant", "irrelevant")
LINK_TTL_S = 30 * 86400  # a digest read after a holiday still works
_LINK_LABEL = b"monitor judgement link v1"
_FEED_LABEL = b"monitor topic feed v1"
_CSRF_LABEL = b"monitor form csrf v1"


def server_key(token: str) -> bytes | None:
    """The key that signs links, derived from ``api.token``; None when no token is set."""
    if not token:
        return None
    return hmac.new(token.encode(), _LINK_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def judgement_signature(key: bytes, match_id: int, verdict: str, expires: int) -> str:
    """The signature of one judgement link: one match, one verdict, one expiry."""
    return _mac(key, f"{match_id}.{verdict}.{expires}")


def judgement_path(key: bytes, match_id: int, verdict: str, now: float | None = None) -> str:
    """``/judge/<match id>/<verdict>?expires=…&sig=…``, valid for :data:`LINK_TTL_S`."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    expires = int(time.time() if now is None else now) + LINK_TTL_S
    sig = judgement_signature(key, match_id, verdict, expires)
    return f"/judge/{match_id}/{verdict}?{urlencode({'expires': expires, 'sig': sig})}"


def judgement_url(
    public_url: str, key: bytes, match_id: int, verdict: str, now: float | None = None
) -> str:
    """The full link an alert shows: ``api.public_url`` + :func:`judgement_path`."""
    return public_url.rstrip("/") + judgement_path(key, match_id, verdict, now)


def judgement_refusal(
    key: bytes | None,
    match_id: int,
    verdict: str,
    expires: str,
    sig: str,
    now: float | None = None,
) -> str:
    """Why a judgement link is refused, or ``""`` when it is genuine and not expired."""
    if key is None:
        return "this server signs no links (api.token is not set)"
    if verdict not in VERDICTS or not expires.isdigit() or len(expires) > 12:
        return "this link is not a judgement link"
    expected = judgement_signature(key, match_id, verdict, int(expires))
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return "this link's signature is wrong (was it changed?)"
    if int(expires) < (time.time() if now is None else now):
        return "this link has expired; judge the match on the web page or with the CLI"
    return ""


def feed_token(key: bytes, topic: str) -> str:
    """The read token of one topic's Atom feed: opens that feed only, never expires."""
    return _mac(key, f"{_FEED_LABEL.decode()}:{topic}")[:32]


def feed_token_ok(key: bytes, topic: str, token: str) -> bool:
    return hmac.compare_digest(token.encode(), feed_token(key, topic).encode())


def feed_path(key: bytes | None, topic: str) -> str:
    """``/topics/<name>/feed.xml`` with ``?token=`` when the server has a key."""
    path = f"/topics/{quote(topic, safe='')}/feed.xml"
    return f"{path}?token={feed_token(key, topic)}" if key is not None else path


def csrf_key(token: str) -> bytes | None:
    """The key that signs form tokens, derived from ``api.token``; None when no token is set
    (the web app then signs with a random key of its own, good until it restarts)."""
    if not token:
        return None
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).digest()


def csrf_token(key: bytes, nonce: str, session: str) -> str:
    """The hidden form field of one browser (``nonce``, its CSRF cookie) and one login
    session (``session``, its session cookie, "" without one)."""
    return _mac(key, f"{_CSRF_LABEL.decode()}:{nonce}:{session}")


def csrf_token_ok(key: bytes, nonce: str, session: str, token: str) -> bool:
    if not (nonce and token):
        return False
    return hmac.compare_digest(token.encode(), csrf_token(key, nonce, session).encode())
