"""The Jinja2 environment every page renders with: autoescape on (feed text is untrusted),
undefined names fail loudly, and filters for times, scores and links."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from monitor import __version__
from monitor.web.csrf import Csrf

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def safe_url(value: object) -> str:
    """Feed links go into href: only http(s) survive (a javascript: link would run on click)."""
    text = str(value or "").strip()
    return text if urlsplit(text).scheme.lower() in ("http", "https") else "#"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def query(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from the current filter with some values changed; empty values dropped,
    so a shared URL carries only the filters in use."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "", False)}
    return "?" + urlencode(kept) if kept else "?"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["when"] = when
    env.filters["safe_url"] = safe_url
    env.globals["query"] = query
    env.globals["version"] = __version__
    return env


ENV = environment()


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page of the web app; ``role`` (admin / reader) decides which forms it shows, and each
    form carries ``csrf``, the token :mod:`monitor.web.csrf` checks (its cookie set here)."""
    role = getattr(request.state, "role", None)
    csrf: Csrf = request.app.state.csrf
    html = ENV.get_template(template).render(
        role=str(role or ""), path=request.url.path, csrf=csrf.form_token(request), **context
    )
    response = HTMLResponse(html, status, headers={"Cache-Control": "no-store"})
    csrf.set_cookie(request, response)
    return response
