"""Delete or rename a topic from the browser (admin only), each behind a page of its own: the
GET shows what will happen and a form, the POST does it (no JavaScript confirm dialog).

The work is :mod:`monitor.pipeline.topic_changes`: config.toml through tomlkit, comments kept,
and the stored topic row in step (deleted: inactive, its matches kept; renamed: the row
renamed, so its history follows the name).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.config import Config
from monitor.errors import MonitorError
from monitor.pipeline import topic_changes
from monitor.pipeline.runtime import Runtime
from monitor.store import db, read_models
from monitor.web import forms
from monitor.web.guard import Admin
from monitor.web.render import page
from monitor.web.topic_form import TopicForm, check_url_name, render_topics

router = APIRouter(include_in_schema=False)


def _stored_matches(runtime: Runtime, name: str) -> int:
    with db.session_scope(runtime.sessions) as s:
        stats = {t["name"]: t for t in read_models.list_topics(s)}
    return int(stats.get(name, {}).get("matches", 0))


def _change_page(
    request: Request, name: str, action: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    """The confirmation (delete) or form (rename) page of topic ``name``; 404 when unknown."""
    runtime: Runtime = request.app.state.runtime
    if not any(t.name == name for t in runtime.config.topics):
        return page(request, "not_found.html.j2", 404, message=f'no topic "{name}" in the config')
    context = {"new_name": "", "error": "", **extra}
    return page(
        request,
        "topic_change.html.j2",
        status,
        name=name,
        action=action,
        matches=_stored_matches(runtime, name),
        **context,
    )


@router.get("/topics/{name}/delete", response_class=HTMLResponse)
def delete_confirm(request: Request, name: str, _role: Admin) -> Response:
    return _change_page(request, name, "delete")


@router.post("/topics/{name}/delete", response_class=HTMLResponse)
async def delete(request: Request, name: str, _role: Admin) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        matches = await run_in_threadpool(_stored_matches, runtime, name)
        config = await run_in_threadpool(topic_changes.delete_topic, runtime, name)
    except MonitorError as exc:
        return await run_in_threadpool(_change_page, request, name, "delete", 400, error=str(exc))
    _use(runtime, config)
    kept = f"its {matches} stored matches are kept" if matches else "it had no stored matches"
    message = f'Topic "{name}" deleted from config.toml; {kept}.'
    return await run_in_threadpool(render_topics, request, TopicForm(), message=message)


@router.get("/topics/{name}/rename", response_class=HTMLResponse)
def rename_form(request: Request, name: str, _role: Admin) -> Response:
    return _change_page(request, name, "rename", new_name=name)


@router.post("/topics/{name}/rename", response_class=HTMLResponse)
async def rename(request: Request, name: str, _role: Admin) -> Response:
    runtime: Runtime = request.app.state.runtime
    new_name = (await forms.fields(request)).get("new_name", "").strip()

    def work() -> Config:
        check_url_name(new_name)
        return topic_changes.rename_topic(runtime, name, new_name)

    try:
        config = await run_in_threadpool(work)
    except MonitorError as exc:
        return await run_in_threadpool(
            _change_page, request, name, "rename", 400, new_name=new_name, error=str(exc)
        )
    _use(runtime, config)
    return RedirectResponse(f"/topics/{quote(new_name, safe='')}", status_code=303)


def _use(runtime: Runtime, config: Config) -> None:
    """This process scores with the new config from its next cycle (as a saved topic does)."""
    runtime.config = config
