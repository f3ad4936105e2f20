"""Mask secrets in URLs and free text before they reach a log line, the terminal or the database.

A URL can carry a secret in three places, and each is masked with ``***``:

* the userinfo: ``https://user:***@host/`` (a username alone is kept unless it looks like a
  token, as in ``https://***@host/``);
* the query: the values of parameters whose name says secret (``token``, ``key``, ``sig``,
  ``code``, ``password``, ...), as in Google Chat's ``?key=***&token=***``;
* the path: segments that look like a generated token (a run of 16 or more letters and digits
  mixing two of lower case, upper case and digits), as in Slack's
  ``hooks.slack.com/services/T01/B02/***`` or Discord's ``/api/webhooks/123/***``.
  Words, dates, slugs and numeric ids stay readable.

Exception messages of httpx, psycopg and friends quote URLs, so :func:`redact_text` finds every
URL in a text and masks it, along with bare ``user:password@host`` pairs and ``password=...``
settings. A caller that knows the secret URL (a channel sending to it) passes it as ``secrets``,
so its path is masked even where the text quotes it alone (a server answering
``Cannot POST /services/T01/B02/<token>``). Every edge that shows a URL or an error calls one of the two: the log formatters,
``config show`` / ``config check``, the outbox's ``last_error`` and what shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote_plus, urlsplit

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"

# parameter names that hold a secret: whole words (between non-letters) or distinctive parts
_SECRET_WORDS = re.compile(
    r"(?:^|[^a-z])(?:key|sig|code|auth|pwd|pass|hash|access|jwt|sas)(?:[^a-z]|$)"
)
_SECRET_PARTS = re.compile(
    r"token|secret|passw|signature|credential|apikey|session|authori[sz]|private"
)
_TOKEN_RUN = re.compile(r"[A-Za-z0-9]{16,}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")
_TRAILING = ".,;:!?)]}"
_BARE_USERINFO = re.compile(r"(?<![\w/])([\w.%+\-]+):([^\s:/@\"']+)@(?=[\w\[])")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api_?key|access_token)=([^\s&'\"]+)"
)


def _looks_like_token(text: str) -> bool:
    """A generated secret, not a word: a long alphanumeric run mixing character classes."""
    for run in _TOKEN_RUN.findall(text):
        classes = (
            any(c.islower() for c in run)
            + any(c.isupper() for c in run)
            + any(c.isdigit() for c in run)
        )
        if classes >= 2:
            return True
    return False


def _secret_param(name: str) -> bool:
    lowered = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # accessKey -> access_key
    return bool(_SECRET_WORDS.search(lowered) or _SECRET_PARTS.search(lowered))


def _netloc(parts: SplitResult) -> str:
    userinfo, at, host = parts.netloc.rpartition("@")
    if parts.scheme.lower() not in ("http", "https") and _looks_like_token(host):
        host = MASK  # e.g. an Apprise URL (tgram://<bot token>/...): the "host" is the secret
    if not at:
        return host
    user, has_password, _password = userinfo.partition(":")
    if has_password:
        return f"{user}:{MASK}@{host}"
    return f"{MASK if _looks_like_token(user) else user}@{host}"


def _path(path: str) -> str:
    return "/".join(MASK if _looks_like_token(segment) else segment for segment in path.split("/"))


def _query(query: str) -> str:
    """Each ``name=value`` pair kept as written, unless its name or value says secret."""
    pairs = []
    for pair in query.split("&"):
        name, has_value, value = pair.partition("=")
        secret = _secret_param(unquote_plus(name)) or _looks_like_token(unquote_plus(value))
        pairs.append(f"{name}={MASK}" if has_value and secret else pair)
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with its password, secret query values and token-like path segments masked."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal: show nothing of it rather than a secret
        return MASK
    out = f"{parts.scheme}:" if parts.scheme else ""
    if url[len(out) :].startswith("//"):
        out += "//" + _netloc(parts)
    out += _path(parts.path)
    if "?" in url:
        out += "?" + _query(parts.query)
    if "#" in url:
        out += "#" + parts.fragment
    return out


def _redact_match(match: re.Match[str]) -> str:
    text = match.group(0)
    stripped = text.rstrip(_TRAILING)
    return redact_url(stripped) + text[len(stripped) :]


def _mask_known(text: str, url: str) -> str:
    """The secret parts of one known URL, wherever ``text`` quotes them (whole or in parts)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, MASK)
    for piece, masked in (
        (url, redact_url(url)),
        (parts.path, _path(parts.path)),
        (parts.query, _query(parts.query)),
    ):
        if piece and masked != piece:
            text = text.replace(piece, masked)
    return text


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Every URL in ``text`` through :func:`redact_url`, bare ``user:password@host`` and
    ``password=...`` pairs masked, and the secret parts of each URL in ``secrets`` wherever
    they appear; the rest of the text is unchanged."""
    if not text:
        return text
    for url in secrets:
        text = _mask_known(text, url)
    text = _URL.sub(_redact_match, text)
    text = _BARE_USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}={MASK}", text)
