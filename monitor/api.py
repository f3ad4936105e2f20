"""The HTTP API, /healthz, /metrics and the web page (FastAPI + uvicorn, Jinja2 templates).

Security: when ``api.token`` is set every route except ``/healthz`` and the OpenAPI document
needs ``Authorization: Bearer <token>`` (the web page also accepts the cookie set by its
``/login`` form). Listening beyond loopback without a token is refused at start-up.
Feed content is untrusted: the templates are rendered with autoescape on, and JSON responses are
data, never markup.

The API reads through :mod:`monitor.store.search` only, so ``monitor matches`` and
``GET /api/matches`` can never disagree.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from monitor import __version__
from monitor.errors import ConfigError, ModelError, MonitorError, NotFoundError
from monitor.logs import event
from monitor.pipeline import querying
from monitor.pipeline.runtime import Runtime
from monitor.store import db, search

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "monitor_token"


class FeedbackIn(BaseModel):
    relevant: bool


def _db_session(request: Request) -> Iterator[Any]:
    """One transaction per request, committed when the handler returns."""
    with db.session_scope(request.app.state.runtime.sessions) as session:
        yield session


DbSession = Annotated[Any, Depends(_db_session)]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to listen beyond loopback without a token: the API can change feedback."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"api.host is {host}, beyond loopback: set api.token (e.g. token = "
            '"${MONITOR_API_TOKEN}") so the API is not open to the network'
        )


def safe_url(value: object) -> str:
    """Feed links go into href: only http(s) survive (a javascript: link would run on click)."""
    text = str(value or "").strip()
    return text if urlsplit(text).scheme.lower() in ("http", "https") else "#"


def _same_origin(request: Request) -> None:
    """Refuse form posts from other sites (the page's forms work without a token on loopback,
    so a hostile page must not be able to submit them from the user's browser)."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site form post refused")


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "-"
    env.filters["safe_url"] = safe_url
    return env


def create_app(runtime: Runtime, *, token: str | None = None) -> FastAPI:
    """The whole HTTP surface for one runtime; ``token`` overrides ``api.token``."""
    secret = runtime.config.api.token.get_secret_value() if token is None else token
    app = FastAPI(
        title="monitor",
        version=__version__,
        description="Matches, articles, feeds and topics of a news monitor.",
    )
    env = _templates()

    def authorize(request: Request) -> None:
        if not secret:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        given = given or request.cookies.get(COOKIE, "")
        if not (given and hmac.compare_digest(given.encode(), secret.encode())):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    app.state.runtime = runtime
    auth = [Depends(authorize)]

    @app.exception_handler(NotFoundError)
    def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelError)
    def _model_error(_request: Request, exc: ModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(MonitorError)
    def _monitor_error(_request: Request, exc: MonitorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/api/matches", dependencies=auth, summary="Matches, newest first (keyset pages)")
    def api_matches(
        s: DbSession,
        topic: str | None = None,
        since: str | None = None,
        until: str | None = None,
        min_score: float | None = None,
        feed: str | None = None,
        limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        try:
            flt = search.MatchFilter(
                topic=topic,
                since=search.parse_when(since),
                until=search.parse_when(until),
                min_score=min_score,
                feed=feed,
                limit=limit,
                cursor=cursor,
            )
            items, next_cursor = search.list_matches(s, flt)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"items": items, "next_cursor": next_cursor}

    @app.get("/api/articles/search", dependencies=auth, summary="Semantic search over articles")
    def api_search(
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        since: str | None = None,
        lang: str | None = None,
        limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 20,
        min_score: Annotated[float | None, Query(ge=-1.0, le=1.0)] = None,
    ) -> dict[str, Any]:
        try:
            since_at = search.parse_when(since)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        items = querying.search_articles(
            runtime, q, limit=limit, since=since_at, lang=lang, min_score=min_score
        )
        return {"items": items}

    @app.get("/api/articles/{article_id}", dependencies=auth, summary="One article in detail")
    def api_article(article_id: int, s: DbSession) -> dict[str, Any]:
        return search.article_detail(s, article_id)

    @app.get("/api/feeds", dependencies=auth, summary="Feeds and their health")
    def api_feeds(s: DbSession) -> dict[str, Any]:
        return {"items": search.list_feed_health(s)}

    @app.get("/api/topics", dependencies=auth, summary="Topics and their match counts")
    def api_topics(s: DbSession) -> dict[str, Any]:
        return {"items": search.list_topics(s)}

    @app.post(
        "/api/matches/{match_id}/feedback",
        dependencies=auth,
        summary="Judge a match relevant or not",
    )
    def api_feedback(match_id: int, body: FeedbackIn, s: DbSession) -> dict[str, Any]:
        return search.record_feedback(s, match_id, body.relevant)

    @app.get("/healthz", summary="200 when the scheduler ticked recently and the DB answers")
    def healthz() -> JSONResponse:
        return _health(runtime)

    @app.get("/metrics", dependencies=auth, summary="Prometheus exposition format")
    def metrics() -> Response:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_DbCollector(runtime))
        registry.register(_ProcessMetrics())
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, s: DbSession, q: str = "") -> Response:
        if secret:
            try:
                authorize(request)
            except HTTPException:
                return RedirectResponse("/login", status_code=303)
        results = querying.search_articles(runtime, q, limit=20) if q.strip() else None
        html = env.get_template("index.html.j2").render(
            topics=_topics_with_matches(s),
            feeds=search.list_feed_health(s),
            q=q,
            results=results,
            version=__version__,
        )
        return HTMLResponse(html)

    @app.post("/feedback/{match_id}", dependencies=auth, include_in_schema=False)
    async def page_feedback(match_id: int, request: Request) -> RedirectResponse:
        _same_origin(request)
        relevant = (await _form(request)).get("relevant", "1") in ("1", "true", "yes")

        def write() -> None:
            with db.session_scope(runtime.sessions) as s:
                search.record_feedback(s, match_id, relevant)

        await run_in_threadpool(write)
        return RedirectResponse(f"/#m{match_id}", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form() -> HTMLResponse:
        return HTMLResponse(env.get_template("login.html.j2").render(error=False))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token_in = (await _form(request)).get("token", "")
        if not secret or not hmac.compare_digest(token_in.encode(), secret.encode()):
            return HTMLResponse(env.get_template("login.html.j2").render(error=True), 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token_in, httponly=True, samesite="strict")
        return response

    return app


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the page's only forms), without python-multipart."""
    body = (await request.body())[:65536].decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _topics_with_matches(s: Any, per_topic: int = 10) -> list[dict[str, Any]]:
    out = []
    for topic in search.list_topics(s):
        if not topic["active"] and not topic["matches"]:
            continue
        items, _ = search.list_matches(s, search.MatchFilter(topic=topic["name"], limit=per_topic))
        out.append({**topic, "recent": items})
    return out


def _health(runtime: Runtime) -> JSONResponse:
    config = runtime.config
    max_age = max(config.api.heartbeat_max_age, 3 * config.polling.tick)
    try:
        with db.session_scope(runtime.sessions) as s:
            last = search.last_heartbeat(s)
    except Exception as exc:  # any database failure means unhealthy, with the reason shown
        # the class name only: driver messages can carry connection details
        return JSONResponse(
            {"status": "unhealthy", "database": f"error: {type(exc).__name__}"}, 503
        )
    now = datetime.now(UTC)
    age = (now - last).total_seconds() if last else None
    healthy = age is not None and age <= max_age
    body = {
        "status": "ok" if healthy else "unhealthy",
        "database": "ok",
        "last_tick": last.isoformat() if last else None,
        "tick_age_s": round(age, 1) if age is not None else None,
        "max_age_s": max_age,
    }
    return JSONResponse(body, 200 if healthy else 503)


class _DbCollector:
    """Counts read from the database at scrape time, so every worker reports the same truth."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        model_id = querying.current_model_id(self.runtime)
        with db.session_scope(self.runtime.sessions) as s:
            snap = search.metrics_snapshot(s, model_id)
            last = search.last_heartbeat(s)
        feeds = GaugeMetricFamily("monitor_feeds", "Feeds by state.", labels=["state"])
        for state in ("ok", "new", "erroring", "disabled"):
            feeds.add_metric([state], snap["feeds"].get(state, 0))
        yield feeds
        yield GaugeMetricFamily(
            "monitor_articles_stored", "Articles in the database.", value=snap["articles"]
        )
        yield GaugeMetricFamily(
            "monitor_embedding_backlog",
            "Articles without an embedding for the current model.",
            value=snap["backlog"],
        )
        matches = GaugeMetricFamily("monitor_matches", "Matches by topic.", labels=["topic"])
        for topic, n in sorted(snap["matches"].items()):
            matches.add_metric([topic], n)
        yield matches
        deliveries = GaugeMetricFamily(
            "monitor_deliveries", "Deliveries by status.", labels=["status"]
        )
        for status, n in sorted(snap["deliveries"].items()):
            deliveries.add_metric([status], n)
        yield deliveries
        count, total = snap["attempts"]
        yield SummaryMetricFamily(
            "monitor_delivery_attempt_duration_seconds",
            "Time spent sending alerts.",
            count_value=count,
            sum_value=total,
        )
        if last is not None:
            age = (datetime.now(UTC) - last) / timedelta(seconds=1)
            yield GaugeMetricFamily(
                "monitor_heartbeat_age_seconds",
                "Seconds since the newest scheduler tick.",
                value=age,
            )


class _ProcessMetrics:
    """Whatever the stages registered in this process (fetch and parse duration histograms
    when the API runs inside `monitor run`), plus process and Python metrics."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def start_in_thread(runtime: Runtime) -> Any:
    """Serve from `monitor run` (api.enabled); returns the uvicorn server (set should_exit)."""
    server = _server(runtime, None, None)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    return server


def serve_forever(runtime: Runtime, *, host: str | None, port: int | None) -> None:
    """`monitor serve`: block until Ctrl-C / SIGTERM (uvicorn handles the signals)."""
    _server(runtime, host, port).run()


def _server(runtime: Runtime, host: str | None, port: int | None) -> Any:
    import uvicorn

    api = runtime.config.api
    host = host or api.host
    port = port or api.port
    token = api.token.get_secret_value()
    check_bind(host, token)
    app = create_app(runtime)
    threading.Thread(
        target=querying.warm_up, args=(runtime,), name="search-warm-up", daemon=True
    ).start()
    event(
        log,
        logging.INFO,
        "api listening",
        url=f"http://{host}:{port}/",
        auth="bearer" if token else "none (loopback)",
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)
