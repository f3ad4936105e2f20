"""``/matches`` (the filtered list) and ``/matches/{id}`` (one match, judged in one click).

The list reads through :func:`monitor.store.read_models.list_matches`, the same read model as
``GET /api/matches`` and ``monitor matches``: the filters are its :class:`MatchFilter`, the
pages its keyset cursor, so every page is an index range scan, however deep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.errors import NotFoundError
from monitor.store import db, pages, published, read_models
from monitor.web import forms
from monitor.web.guard import DbSession, Reader
from monitor.web.render import page

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (25, 50, 100)
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Filters:
    """The matches page's query string, as typed by the user (kept for the form and links)."""

    topic: str = ""
    feed: str = ""
    lang: str = ""
    since: str = ""
    until: str = ""
    min_score: str = ""
    alerted: str = ""  # "" | "alerted" | "history"
    judged: str = ""  # "" | "judged" | "unjudged"
    sort: str = "time"
    limit: int = 25

    def params(self) -> dict[str, Any]:
        """The non-default values, for links that keep the filter."""
        out = {k: v for k, v in self.__dict__.items() if v not in ("", None)}
        if out.get("sort") == "time":
            del out["sort"]
        if out.get("limit") == 25:
            del out["limit"]
        return out


def _until(value: str) -> str:
    """A date alone means "through that day": the day after, exclusive."""
    if len(value) == 10 and value[4] == "-":
        parsed = read_models.parse_when(value)
        return (parsed + timedelta(days=1)).isoformat() if parsed else ""
    return value


def to_match_filter(f: Filters, cursor: str) -> read_models.MatchFilter:
    """The store filter; raises ValueError with the field's name for a bad value."""
    try:
        min_score = float(f.min_score) if f.min_score.strip() else None
    except ValueError:
        raise ValueError(f'min score: expected a number like 0.5, got "{f.min_score}"') from None
    times = {}
    for name, value in (("since", f.since), ("until", _until(f.until))):
        try:
            times[name] = read_models.parse_when(value.strip() or None)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{name}: {exc}") from None
    return read_models.MatchFilter(
        topic=f.topic or None,
        feed=f.feed or None,
        lang=f.lang.strip() or None,
        since=times["since"],
        until=times["until"],
        min_score=min_score,
        alerted={"alerted": True, "history": False}.get(f.alerted),
        judged={"judged": True, "unjudged": False}.get(f.judged),
        sort=f.sort if f.sort in read_models.SORTS else "time",
        limit=f.limit if f.limit in PAGE_SIZES else PAGE_SIZES[0],
        cursor=cursor or None,
    )


@router.get("/matches", response_class=HTMLResponse)
def matches_page(
    request: Request,
    _role: Reader,
    s: DbSession,
    topic: str = "",
    feed: str = "",
    lang: str = "",
    since: str = "",
    until: str = "",
    min_score: str = "",
    alerted: str = "",
    judged: str = "",
    sort: str = "time",
    limit: int = 25,
    cursor: str = "",
) -> Response:
    f = Filters(topic, feed, lang, since, until, min_score, alerted, judged, sort, limit)
    items: list[dict[str, Any]] = []
    next_cursor, error = None, ""
    try:
        items, next_cursor = read_models.list_matches(s, to_match_filter(f, cursor))
    except (ValueError, NotFoundError) as exc:
        error = str(exc)
    return page(
        request,
        "matches.html.j2",
        400 if error else 200,
        f=f,
        params=f.params(),
        items=items,
        next_cursor=next_cursor,
        paged=bool(cursor),
        error=error,
        choices=pages.filter_choices(s),
        page_sizes=PAGE_SIZES,
        here=str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
    )


def _match_id(value: int) -> int:
    if not 1 <= value <= MAX_ID:
        raise NotFoundError(f"no match with id {value}")
    return value


@router.get("/matches/{match_id}", response_class=HTMLResponse)
def match_page(request: Request, match_id: int, _role: Reader, s: DbSession) -> Response:
    try:
        brief = published.match_brief(s, _match_id(match_id))
    except NotFoundError as exc:
        return page(request, "not_found.html.j2", 404, message=str(exc))
    detail = read_models.article_detail(s, brief["article_id"])
    this = next(m for m in detail["matches"] if m["match_id"] == match_id)
    others = [m for m in detail["matches"] if m["match_id"] != match_id]
    story = pages.story_articles(s, brief["story_id"], match_id) if brief["story_id"] else []
    return page(
        request,
        "match.html.j2",
        m=brief,
        article=detail,
        this=this,
        other_topics=others,
        story=story,
        judgements=pages.judgements(s, brief["article_id"]),
    )


def _back(target: str, fallback: str) -> str:
    """Where to go after a judgement: a path on this site only (never //host or a scheme)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else fallback


@router.post("/matches/{match_id}/judge")
async def judge(request: Request, match_id: int, _role: Reader) -> Response:
    """One-click judgement from the list or the match page (cross-site POSTs were refused by
    the API's guard; the session cookie is SameSite=Strict)."""
    form = await forms.fields(request)
    relevant = form.get("relevant", "") in ("1", "true", "yes")
    _match_id(match_id)

    def write() -> None:
        with db.session_scope(request.app.state.runtime.sessions) as s:
            read_models.record_feedback(s, match_id, relevant)

    await run_in_threadpool(write)
    target = _back(form.get("next", ""), f"/matches/{match_id}")
    return RedirectResponse(target, status_code=303)
