"""The web app's pages: FastAPI routers rendered server-side with Jinja2, no JavaScript needed.

* ``/matches``: every match with filters in the URL, keyset pages, sort by time or score;
* ``/matches/{id}``: one match with its article, explanation, story and judgements;
* ``/topics`` and ``/topics/{name}``: topics, a new topic with a preview, a topic's chart;
  ``/topics/{name}/rename`` and ``/delete``: a page each, the change on its POST;
* ``/feeds``: feed health, add (with discovery), disable, OPML import and export;
* ``/channels``: alert channels (no secret shown), enable / disable, a test message.

:func:`install` adds them to the app :mod:`monitor.api` builds, which keeps the security
middleware (Host check, cross-site POSTs refused, CSP) in front of every page. Who may do what
is :mod:`monitor.web.access`: reading and judging need any token, changes the admin one.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from monitor.web import channels, feeds, matches, topic_admin, topic_form, topics
from monitor.web.guard import LoginRequired, PageForbidden
from monitor.web.render import page


def install(app: FastAPI) -> None:
    """Add the pages and the handlers that turn "sign in first" into a redirect and "not
    allowed" into a page (the JSON API keeps its 401/403 answers)."""

    @app.exception_handler(LoginRequired)
    def _login(_request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(PageForbidden)
    def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return page(request, "forbidden.html.j2", 403, message=str(exc))

    for module in (matches, topic_form, topic_admin, topics, feeds, channels):
        app.include_router(module.router)
