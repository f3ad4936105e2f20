"""CSRF tokens on the web app's forms: a second lock behind the cross-site refusal.

:mod:`monitor.api`'s guard already refuses a POST whose ``Origin`` (or ``Referer``) names
another site, and the session cookie is ``SameSite=Strict``. A browser that sends neither
header (some privacy settings strip them) and a site on a name the server also answers to are
the gaps left; so every state-changing form also carries a hidden ``csrf`` field:

* the browser gets a CSRF cookie, a random nonce (``monitor_csrf``, HttpOnly, SameSite=Strict),
  with the first page it is served;
* the field is an HMAC over that nonce and the login session cookie (:mod:`monitor.signing`),
  keyed by a key derived from ``api.token`` (without a token: a random key of this process,
  so a form served before a restart must be reloaded);
* the guard checks it on every POST before any route runs, and answers 403 with a page saying
  why when it is missing or wrong.

Not checked, because something else authenticates them and a cross-site form cannot forge it:

* a request with an ``Authorization`` header (the API's bearer token: forms cannot set
  headers, and a script of another site would need CORS, which this server never grants);
* ``/api/...``: JSON bodies (FastAPI refuses a form's content type for them), bearer tokens;
* ``/judge/...``: the alert's judgement links, each signed for one match, one verdict and one
  expiry (they are opened from an email, where no page served a token);
* ``/login``: it has no session to protect yet and only checks the token typed into it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import cookie_parser

from monitor import signing
from monitor.web import forms
from monitor.web.access import COOKIE

CSRF_COOKIE = "monitor_csrf"
FIELD = "csrf"
EXEMPT_PREFIXES = ("/api/", "/judge/")
EXEMPT_PATHS = frozenset({"/login"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MISSING = "Form refused: it carries no CSRF token. Reload the page and submit the form again."
WRONG = (
    "Form refused: its CSRF token is wrong or belongs to another session. Reload the page "
    "and submit the form again."
)


@dataclass(frozen=True)
class Csrf:
    """One app's form tokens: its key, how a page gets a token, how a POST is checked."""

    key: bytes

    @classmethod
    def for_token(cls, admin_token: str) -> Csrf:
        return cls(signing.csrf_key(admin_token) or secrets.token_bytes(32))

    def form_token(self, request: Request) -> str:
        """The ``csrf`` field of the forms of the page being rendered for ``request``."""
        nonce = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_nonce", "")
        if not nonce:
            nonce = secrets.token_urlsafe(24)
        request.state.csrf_nonce = nonce
        return signing.csrf_token(self.key, nonce, request.cookies.get(COOKIE, ""))

    @staticmethod
    def set_cookie(request: Request, response: Response) -> None:
        """Give the browser the nonce :meth:`form_token` chose, when it has none yet."""
        nonce = getattr(request.state, "csrf_nonce", "")
        if nonce and request.cookies.get(CSRF_COOKIE) != nonce:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )

    def refusal(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
        """Why a request is refused ("" when it may go on); ``headers`` lower-case names."""
        if method in SAFE_METHODS or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return ""
        if headers.get("authorization"):
            return ""
        token = forms.text_field(headers.get("content-type", ""), body, FIELD)
        if not token:
            return MISSING
        cookies = cookie_parser(headers.get("cookie", ""))  # as Request.cookies reads them
        nonce, session = cookies.get(CSRF_COOKIE, ""), cookies.get(COOKIE, "")
        return "" if signing.csrf_token_ok(self.key, nonce, session, token) else WRONG
