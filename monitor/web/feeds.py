"""``/feeds``: every feed's health and last error; add one by URL or by a page that links to
it, disable one, import an OPML file, export all as OPML.

The changes go through :mod:`monitor.pipeline.subscriptions`, the module `monitor feeds
add|remove|import|export` uses, so the page and the CLI cannot drift apart. After a POST the
page is rendered with the outcome (no redirect carrying a message in its URL, which another
site could forge).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from monitor.errors import MonitorError
from monitor.pipeline import subscriptions
from monitor.store import db, pages, read_models
from monitor.web import forms
from monitor.web.guard import Admin, DbSession, Reader
from monitor.web.render import page

router = APIRouter(include_in_schema=False)


def _render(request: Request, s: Any, status: int = 200, **outcome: Any) -> HTMLResponse:
    config = request.app.state.runtime.config
    # by id: the listing masks credentials in URLs, so its URLs may not equal the config's
    listed = pages.feed_ids_with_urls(s, {spec.url for spec in config.feeds})
    feeds = read_models.list_feed_health(s)
    for feed in feeds:
        feed["in_config"] = feed["id"] in listed
    context = {"message": "", "error": "", "url": "", "name": "", **outcome}
    return page(request, "feeds.html.j2", status, feeds=feeds, **context)


@router.get("/feeds", response_class=HTMLResponse)
def feeds_page(request: Request, _role: Reader, s: DbSession) -> Response:
    return _render(request, s)


def _in_transaction(request: Request, work: Any) -> Any:
    """Run ``work(session)`` in its own transaction: nothing stays stored when it raises."""
    with db.session_scope(request.app.state.runtime.sessions) as s:
        return work(s)


@router.post("/feeds", response_class=HTMLResponse)
async def add_feed(request: Request, _role: Admin) -> Response:
    form = await forms.fields(request)
    url, name = form.get("url", "").strip(), form.get("name", "").strip()
    polling = request.app.state.runtime.config.polling

    def work(s: Any) -> subscriptions.Added:
        return subscriptions.add_feed(s, polling, url, name=name)

    try:
        added = await run_in_threadpool(_in_transaction, request, work)
    except MonitorError as exc:
        return await _reply(request, 400, error=str(exc), url=url, name=name)
    found = f" (found on {added.found_on})" if added.found_on else ""
    verb = "polled again (removed earlier, history kept)" if added.restored else "added"
    return await _reply(request, message=f"Feed {added.id} {verb}: {added.url}{found}")


@router.post("/feeds/{feed_id}/disable", response_class=HTMLResponse)
async def disable_feed(request: Request, feed_id: int, _role: Admin) -> Response:
    config = request.app.state.runtime.config

    def work(s: Any) -> Any:
        return subscriptions.disable_feed(s, config, str(feed_id))

    try:
        removal = await run_in_threadpool(_in_transaction, request, work)
    except MonitorError as exc:
        return await _reply(request, 400, error=str(exc))
    return await _reply(
        request, message=f"Feed {removal.id} disabled: {removal.url} (its history is kept)"
    )


@router.post("/feeds/import", response_class=HTMLResponse)
async def import_opml(request: Request, _role: Admin) -> Response:
    sent = await forms.upload(request, "opml")
    if sent is None or not sent[0]:
        return await _reply(request, 400, error="choose an OPML file to import")
    data, filename = sent
    try:
        listing = subscriptions.read_list(data, filename)
        report = await run_in_threadpool(
            _in_transaction, request, lambda s: subscriptions.import_opml(s, listing)
        )
    except MonitorError as exc:
        return await _reply(request, 400, error=str(exc))
    return await _reply(request, message=report.summary())


@router.get("/feeds/export.opml")
def export_opml(_role: Reader, s: DbSession) -> Response:
    data, _ = subscriptions.export_opml(s)
    return Response(
        data,
        media_type="text/x-opml+xml",
        headers={"Content-Disposition": 'attachment; filename="monitor-feeds.opml"'},
    )


async def _reply(request: Request, status: int = 200, **outcome: Any) -> HTMLResponse:
    def render() -> HTMLResponse:
        with db.session_scope(request.app.state.runtime.sessions) as s:
            return _render(request, s, status, **outcome)

    result: HTMLResponse = await run_in_threadpool(render)
    return result
