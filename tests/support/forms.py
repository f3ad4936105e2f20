"""A TestClient that posts forms as a browser does: with the hidden CSRF token (and cookie) a
page of the app served it. Tests of the token itself use a plain TestClient."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from monitor.web.csrf import EXEMPT_PATHS, EXEMPT_PREFIXES

TOKEN_FIELD = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')


def page_token(client: TestClient, path: str = "/feeds") -> str:
    """The CSRF token of the forms on ``path``, "" when it has none (the client keeps the
    cookie that came with it)."""
    found = TOKEN_FIELD.search(client.get(path).text)
    return found.group(1) if found else ""


class FormClient(TestClient):
    """A POST to a checked path, without an Authorization header or ``json=``, carries the
    token of a page fetched just before (it depends on the session, which a login changes)."""

    def post(self, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        path = urlsplit(str(url)).path
        headers = {k.lower() for k in {**self.headers, **(kwargs.get("headers") or {})}}
        checked = not (path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES))
        if checked and "json" not in kwargs and "authorization" not in headers:
            kwargs["data"] = {"csrf": page_token(self), **(kwargs.get("data") or {})}
        return super().post(url, *args, **kwargs)
