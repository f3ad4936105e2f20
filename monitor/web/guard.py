"""What every page route depends on: a database session, and role checks: a caller without a session is sent to /login, a reader who tries an
admin action gets a 403 page (the API's own checks answer JSON: :mod:`monitor.web.access`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request

from monitor.store import db
from monitor.web.access import Access, Role


class LoginRequired(Exception):
    """No token and no session: the page redirects to /login."""


class PageForbidden(Exception):
    """The read-only role asked for an admin action."""


def page_reader(request: Request) -> Role:
    access: Access = request.app.state.access
    role = access.role_of(request)
    if role is None:
        raise LoginRequired
    request.state.role = role
    return role


def page_admin(request: Request) -> Role:
    if page_reader(request) is not Role.ADMIN:
        raise PageForbidden(
            "Signed in with the read-only token: it can read and judge matches, but changing "
            "feeds, topics or channels needs the admin token."
        )
    return Role.ADMIN


Reader = Annotated[Role, Depends(page_reader)]
Admin = Annotated[Role, Depends(page_admin)]


def _db_session(request: Request) -> Iterator[Any]:
    """One transaction per request, committed when the handler returns."""
    with db.session_scope(request.app.state.runtime.sessions) as session:
        yield session


# scope="function": commit BEFORE the answer is sent (FastAPI's default for yield dependencies
# ends them after the response, so a client reading right after its POST saw the old state)
DbSession = Annotated[Any, Depends(_db_session, scope="function")]
