"""``/topics`` (every topic; a new one from a seed, previewed before it is saved) and
``/topics/{name}`` (matches by day, score histogram, threshold, recent false alarms).

New topics are written to config.toml (see :mod:`monitor.web.topic_form`): the daemon builds
its topic models from the config, ``monitor topics list`` reads it, and a restart keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from monitor.errors import NotFoundError
from monitor.store import pages, read_models
from monitor.web import charts
from monitor.web.guard import DbSession, Reader
from monitor.web.render import page

router = APIRouter(include_in_schema=False)

CHART_DAYS = (14, 30, 90)


def topic_rows(request: Request, s: Any) -> list[dict[str, Any]]:
    """Configured topics with their stored figures (a topic removed from the config but with
    matches is listed as inactive)."""
    stats = {t["name"]: t for t in read_models.list_topics(s)}
    rows = []
    for spec in request.app.state.runtime.config.topics:
        stat = stats.pop(spec.name, {})
        rows.append(
            {
                "name": spec.name,
                "threshold": spec.threshold,
                "active": True,
                "matches": stat.get("matches", 0),
                "last_match": stat.get("last_match"),
                "seeds": [str(p) for p in spec.seed],
                "descriptions": list(spec.descriptions),
                "channels": list(spec.channels),
            }
        )
    for stat in stats.values():
        if stat["matches"]:
            rows.append({**stat, "active": False, "seeds": [], "descriptions": [], "channels": []})
    return rows


@router.get("/topics/{name}", response_class=HTMLResponse)
def topic_page(
    request: Request, name: str, _role: Reader, s: DbSession, days: int = 30
) -> Response:
    days = days if days in CHART_DAYS else 30
    try:
        topic = pages.topic_row(s, name)
    except NotFoundError as exc:
        return page(request, "not_found.html.j2", 404, message=str(exc))
    spec = next((t for t in request.app.state.runtime.config.topics if t.name == name), None)
    threshold = spec.threshold if spec else topic.threshold
    since = datetime.now(UTC) - timedelta(days=days)
    per_day = pages.matches_by_day(s, topic.id, days)
    scores = pages.match_scores(s, topic.id, since)
    return page(
        request,
        "topic.html.j2",
        topic=topic,
        spec=spec,
        threshold=threshold,
        days=days,
        day_choices=CHART_DAYS,
        total=sum(n for _, n, _ in per_day),
        alerted=sum(a for _, _, a in per_day),
        by_day=charts.by_day(per_day),
        histogram=charts.histogram(scores, threshold),
        false_alarms=pages.false_alarms(s, topic.id),
    )
