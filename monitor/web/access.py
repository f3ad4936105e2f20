"""Who may do what: the admin token, the optional read-only token, and the login session.

Two roles, checked on every route of the API and of the web pages alike:

* **admin** (``api.token``): everything;
* **reader** (``api.read_token``): reads every page and route, and judges matches (a
  judgement is what a reader is for), but cannot add, disable or import feeds, create topics
  or change channels: those routes answer 403.

Without ``api.token`` the server trusts the machine (it only listens on loopback then) and every
caller is admin. A caller proves a role with ``Authorization: Bearer <token>`` or with the
signed session cookie ``/login`` sets: ``<issued unix time>.<HMAC>`` keyed by a key derived
from the token used to sign in, so it never contains a token, a changed token ends its
sessions, and a reader's cookie cannot pass for an admin's.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Request

COOKIE = "monitor_session"
SESSION_MAX_AGE_S = 7 * 86400


class Role(StrEnum):
    ADMIN = "admin"
    READER = "reader"


def _session_key(token: str) -> bytes:
    """The key that signs sessions, derived from the token: every worker and restart agrees
    on it, and a new token ends every session."""
    return hmac.new(token.encode(), b"monitor web session v1", hashlib.sha256).digest()


def make_session(token: str, now: float | None = None) -> str:
    """The login cookie's value: ``<issued unix time>.<HMAC>``; it does not contain the token."""
    issued = str(int(time.time() if now is None else now))
    mac = hmac.new(_session_key(token), issued.encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def valid_session(token: str, value: str, now: float | None = None) -> bool:
    """Signed with this token's key, and issued less than SESSION_MAX_AGE_S ago."""
    issued, _, mac = value.partition(".")
    if not (issued.isdigit() and len(issued) <= 12 and mac):
        return False
    expected = hmac.new(_session_key(token), issued.encode(), hashlib.sha256).hexdigest()
    age = (time.time() if now is None else now) - int(issued)
    return hmac.compare_digest(mac, expected) and -60 <= age <= SESSION_MAX_AGE_S


def _same(given: str, secret: str) -> bool:
    return bool(given and secret) and hmac.compare_digest(given.encode(), secret.encode())


@dataclass(frozen=True)
class Access:
    """The two tokens of one app; ``admin`` empty means no authentication at all."""

    admin: str
    reader: str = ""

    def token_role(self, given: str) -> Role | None:
        """The role a presented token (bearer or login form) grants, if any."""
        if not self.admin or _same(given, self.admin):
            return Role.ADMIN
        if _same(given, self.reader):
            return Role.READER
        return None

    def signing_token(self, role: Role) -> str:
        return self.admin if role is Role.ADMIN else self.reader

    def role_of(self, request: Request) -> Role | None:
        """The caller's role from its bearer token or session cookie; None when neither."""
        if not self.admin:
            return Role.ADMIN
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if given:
            return self.token_role(given)
        cookie = request.cookies.get(COOKIE, "")
        if valid_session(self.admin, cookie):
            return Role.ADMIN
        if self.reader and valid_session(self.reader, cookie):
            return Role.READER
        return None


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


def require_reader(request: Request) -> Role:
    """Any signed-in caller (a FastAPI dependency); 401 otherwise."""
    role = _access(request).role_of(request)
    if role is None:
        raise HTTPException(
            401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    request.state.role = role
    return role


def require_admin(request: Request) -> Role:
    """The admin only (a FastAPI dependency): 401 without a token, 403 for the read-only one."""
    role = require_reader(request)
    if role is not Role.ADMIN:
        raise HTTPException(
            403, "the read-only token cannot change feeds, topics or channels (admin token needed)"
        )
    return role
