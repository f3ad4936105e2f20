"""The HTTP API, /healthz, /metrics, /docs and the web page (FastAPI + uvicorn, Jinja2 templates).

Security: when ``api.token`` is set every route except ``/healthz``, ``/docs``, its static
assets and the OpenAPI document needs ``Authorization: Bearer <token>`` (the web page also
accepts the signed session cookie its ``/login`` form sets: an HMAC, never the token itself).
Listening beyond loopback without a token is refused at start-up.

Without a token the API trusts the machine, so :class:`_Guard` keeps other web sites out of it:

* a ``Host`` header that is not localhost, a loopback address, ``api.host`` or one of
  ``api.allowed_hosts`` gets 400 (DNS rebinding: a hostile page whose name resolves to
  127.0.0.1 sends its own name as Host);
* a POST (any method but GET, HEAD, OPTIONS) whose ``Origin`` (or ``Referer``) is another
  site gets 403 (cross-site forms and fetches);
* a request body over :data:`MAX_BODY_BYTES` gets 413;
* a form POST without the hidden CSRF token of the page that served it gets 403
  (:mod:`monitor.web.csrf`: defense in depth, with or without a token);
* every answer carries a strict Content-Security-Policy (scripts and styles only from this
  server: the page has no inline script or style, /docs serves Swagger UI's files itself),
  ``X-Frame-Options: DENY`` and ``X-Content-Type-Options: nosniff``.

Feed content is untrusted: the templates are rendered with autoescape on, and JSON responses are
data, never markup.

The API reads through :mod:`monitor.store.read_models` only, so ``monitor matches`` and
``GET /api/matches`` can never disagree.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import fastapi_offline
import jinja2
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import __version__, search, signing
from monitor.alert import atom
from monitor.errors import ConfigError, ModelError, MonitorError, NotFoundError
from monitor.logs import event
from monitor.pipeline import subscriptions
from monitor.pipeline.runtime import Runtime
from monitor.store import db, published, queries, read_models
from monitor.web import install as install_pages
from monitor.web.access import (
    COOKIE,
    SESSION_MAX_AGE_S,
    Access,
    make_session,
    require_admin,
    require_reader,
    valid_session,
)
from monitor.web.csrf import Csrf
from monitor.web.guard import DbSession
from monitor.web.render import ENV

__all__ = ["COOKIE", "SESSION_MAX_AGE_S", "create_app", "make_session", "valid_session"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SWAGGER_UI = Path(fastapi_offline.__file__).resolve().parent / "static"
# every file /static/ serves: a fixed list, so no path from a request reaches the file system
ASSETS = {
    "page.css": STATIC / "page.css",
    "docs.js": STATIC / "docs.js",
    "swagger-ui.css": SWAGGER_UI / "swagger-ui.css",
    "swagger-ui-bundle.js": SWAGGER_UI / "swagger-ui-bundle.js",
    "favicon.png": SWAGGER_UI / "favicon.png",
}
MAX_BODY_BYTES = 64 * 1024  # the page's forms and the feedback JSON are a few bytes
# the feeds page's OPML upload: a subscription list of thousands of feeds is a few hundred KB
UPLOAD_PATHS = {"/feeds/import": 2 * 1024 * 1024}
MAX_ID = 2**63 - 1  # ids are 64-bit integers in both databases
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its stylesheet
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (recognised, not bound)


class FeedbackIn(BaseModel):
    relevant: bool


class FeedIn(BaseModel):
    url: str
    name: str = ""
    discover: bool = True


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


def host_name(netloc: str) -> str:
    """The host of a ``Host`` header or URL netloc, lower case, without port or brackets:
    ``"[::1]:8080"`` -> ``"::1"``, ``"Example.org:80"`` -> ``"example.org"``."""
    netloc = netloc.strip().lower().rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.partition(":")[0] if netloc.count(":") == 1 else netloc


@dataclass(frozen=True)
class HostRule:
    """Which ``Host`` headers the API answers (see the module docstring)."""

    names: frozenset[str]  # api.host and api.allowed_hosts
    suffixes: tuple[str, ...]  # "*.example.org" -> ".example.org"
    any_host: bool

    @classmethod
    def build(cls, bind_host: str, allowed: list[str]) -> HostRule:
        configured = [a.strip().lower() for a in allowed if a.strip()]
        names = {host_name(a) for a in configured if not a.startswith("*")}
        any_host = "*" in configured or (host_name(bind_host) in EVERY_ADDRESS and not names)
        suffixes = tuple(a[1:] for a in configured if a.startswith("*."))
        return cls(frozenset(names | {host_name(bind_host)}), suffixes, any_host)

    def configured(self, host: str) -> bool:
        """``host`` is api.host or listed in api.allowed_hosts."""
        return host in self.names or host.endswith(self.suffixes)

    def allows(self, host_header: str) -> bool:
        host = host_name(host_header)
        return self.any_host or is_loopback(host) or self.configured(host)

    def foreign_origin(self, origin: str, host_header: str) -> bool:
        """An Origin (or Referer) that is neither this server as the browser addressed it nor
        a configured name (a proxy may rewrite Host); ``null`` (sandboxed pages) is foreign."""
        netloc = urlsplit(origin).netloc.lower()
        if netloc and netloc == host_header.strip().lower():
            return False
        return not (netloc and self.configured(host_name(netloc)))


class _Guard:
    """ASGI middleware in front of every route: Host check (400), cross-site POSTs (403), body
    size (413), the forms' CSRF token (403), and the security headers on every answer,
    refusals included."""

    def __init__(self, app: ASGIApp, hosts: HostRule, csrf: Csrf) -> None:
        self.app = app
        self.hosts = hosts
        self.csrf = csrf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = Headers(scope=scope)
        limit = UPLOAD_PATHS.get(scope.get("path", ""), MAX_BODY_BYTES)
        refusal = self._refusal(scope["method"], headers, limit)
        if refusal is None and scope["method"] not in SAFE_METHODS:
            body, refusal = await _read_body(receive, limit)
            receive = _replay(body, receive)
            if refusal is None:
                lower = dict(headers.items())  # Headers gives lower-case names
                why = self.csrf.refusal(scope["method"], scope.get("path", ""), lower, body)
                if why:
                    await _forbidden_page(scope["path"], why)(scope, receive, send)
                    return
        if refusal is not None:
            status, detail = refusal
            await JSONResponse({"detail": detail}, status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, method: str, headers: Headers, limit: int) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            return 400, (
                f'host "{host}" is not served here; add it to api.allowed_hosts if this '
                "server is meant to answer to that name"
            )
        origin = headers.get("origin") or headers.get("referer") or ""
        if method not in SAFE_METHODS and origin and self.hosts.foreign_origin(origin, host):
            return 403, f'cross-site request refused (origin "{origin}" is not this server)'
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return 413, f"request body over {limit} bytes"
        return None


def _forbidden_page(path: str, message: str) -> HTMLResponse:
    """The web app's "not allowed" page, for a form the guard refuses (not a JSON answer:
    only the pages' forms are checked, and a person reads the reason)."""
    html = ENV.get_template("forbidden.html.j2").render(role="", path=path, message=message)
    return HTMLResponse(html, 403, headers={"Cache-Control": "no-store"})


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers.setdefault(name, value)
        await send(message)

    return wrapped


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, tuple[int, str] | None]:
    """The whole body, or a 413 refusal as soon as it grows past ``limit`` (a chunked body
    declares no length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the route sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", (413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that hands the already-read body to the route, then the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _when(value: str | None, name: str) -> datetime | None:
    """A ``since``/``until`` parameter; anything unusable is a 400 naming the parameter."""
    try:
        return read_models.parse_when(value)
    except OverflowError:
        raise HTTPException(
            400, f'{name}: "{value}" is out of the date range (years 1 to 9999)'
        ) from None
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def _row_id(value: int, name: str) -> int:
    """A path id: beyond 64 bits the databases cannot even compare it (SQLite overflows)."""
    if not 1 <= value <= MAX_ID:
        raise HTTPException(400, f"{name} must be between 1 and {MAX_ID}, got {value}")
    return value


def create_app(
    runtime: Runtime,
    *,
    token: str | None = None,
    host: str | None = None,
    read_token: str | None = None,
) -> FastAPI:
    """The whole HTTP surface for one runtime; ``token`` overrides ``api.token``,
    ``read_token`` ``api.read_token`` and ``host`` (the address it listens on) ``api.host``."""
    api = runtime.config.api
    secret = api.token.get_secret_value() if token is None else token
    app = FastAPI(
        title="monitor",
        version=__version__,
        description="Matches, articles, feeds and topics of a news monitor.",
        docs_url=None,  # served below from local files: the CDN one is blank offline
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    csrf = Csrf.for_token(secret)
    app.add_middleware(_Guard, hosts=HostRule.build(host or api.host, api.allowed_hosts), csrf=csrf)
    app.state.csrf = csrf
    env = ENV
    reader = api.read_token.get_secret_value() if read_token is None else read_token
    access = Access(secret, reader if secret else "")
    app.state.runtime = runtime
    app.state.access = access
    auth = [Depends(require_reader)]  # read, and judge matches
    admin = [Depends(require_admin)]  # change feeds, topics or channels

    @app.exception_handler(NotFoundError)
    def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelError)
    def _model_error(_request: Request, exc: ModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(MonitorError)
    def _monitor_error(_request: Request, exc: MonitorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(OverflowError)
    def _overflow(_request: Request, _exc: OverflowError) -> JSONResponse:
        # e.g. ?feed=<a 30-digit id>: SQLite cannot bind integers beyond 64 bits
        detail = f"a number in the request is out of range (ids go up to {MAX_ID})"
        return JSONResponse({"detail": detail}, status_code=400)

    @app.get(
        "/api/matches", dependencies=auth, summary="Matches, newest (or best) first, keyset pages"
    )
    def api_matches(
        s: DbSession,
        topic: str | None = None,
        since: str | None = None,
        until: str | None = None,
        min_score: float | None = None,
        feed: str | None = None,
        tag: str | None = None,
        lang: str | None = None,
        limit: Annotated[int, Query(ge=1, le=read_models.MAX_LIMIT)] = 50,
        cursor: str | None = None,
        alerted: bool | None = None,
        judged: bool | None = None,
        sort: Annotated[str, Query(pattern="^(time|score)$")] = "time",
    ) -> dict[str, Any]:
        flt = read_models.MatchFilter(
            alerted=alerted,
            judged=judged,
            sort=sort,
            topic=topic,
            since=_when(since, "since"),
            until=_when(until, "until"),
            min_score=min_score,
            feed=feed,
            tag=tag,
            lang=lang,
            limit=limit,
            cursor=cursor,
        )
        try:
            items, next_cursor = read_models.list_matches(s, flt)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"items": items, "next_cursor": next_cursor}

    @app.get("/api/articles/search", dependencies=auth, summary="Semantic search over articles")
    def api_search(
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        since: str | None = None,
        lang: str | None = None,
        topic: str | None = None,
        feed: str | None = None,
        limit: Annotated[int, Query(ge=1, le=read_models.MAX_LIMIT)] = 20,
        min_score: Annotated[float | None, Query(ge=-1.0, le=1.0)] = None,
    ) -> dict[str, Any]:
        since_at = _when(since, "since")
        items = search.search_articles(
            runtime,
            q,
            limit=limit,
            since=since_at,
            lang=lang,
            topic=topic,
            feed=feed,
            min_score=min_score,
        )
        return {"items": items}

    @app.get("/api/articles/{article_id}", dependencies=auth, summary="One article in detail")
    def api_article(article_id: int, s: DbSession) -> dict[str, Any]:
        return read_models.article_detail(s, _row_id(article_id, "article id"))

    @app.get("/api/feeds", dependencies=auth, summary="Feeds and their health")
    def api_feeds(s: DbSession) -> dict[str, Any]:
        return {"items": read_models.list_feed_health(s)}

    @app.get("/api/topics", dependencies=auth, summary="Topics and their match counts")
    def api_topics(s: DbSession) -> dict[str, Any]:
        return {"items": read_models.list_topics(s)}

    @app.post(
        "/api/matches/{match_id}/feedback",
        dependencies=auth,
        summary="Judge a match relevant or not",
    )
    def api_feedback(match_id: int, body: FeedbackIn, s: DbSession) -> dict[str, Any]:
        return read_models.record_feedback(s, _row_id(match_id, "match id"), body.relevant)

    @app.post("/api/feeds", dependencies=admin, summary="Add a feed (admin token)")
    def api_add_feed(body: FeedIn, s: DbSession) -> dict[str, Any]:
        added = subscriptions.add_feed(
            s, runtime.config.polling, body.url, name=body.name, find=body.discover
        )
        return {"id": added.id, "url": added.url, "restored": added.restored}

    @app.post(
        "/api/feeds/{feed_id}/disable", dependencies=admin, summary="Stop polling (admin token)"
    )
    def api_disable_feed(feed_id: int, s: DbSession) -> dict[str, Any]:
        removal = subscriptions.disable_feed(s, runtime.config, str(_row_id(feed_id, "feed id")))
        return {"id": removal.id, "url": removal.url, "enabled": False}

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
        role = access.role_of(request)
        if role is None:
            return RedirectResponse("/login", status_code=303)
        results = search.search_articles(runtime, q, limit=20) if q.strip() else None
        html = env.get_template("index.html.j2").render(
            topics=_topics_with_matches(s),
            feeds=read_models.list_feed_health(s),
            q=q,
            results=results,
            role=str(role),
            csrf=csrf.form_token(request),
        )
        response = HTMLResponse(html)
        csrf.set_cookie(request, response)
        return response

    @app.post("/feedback/{match_id}", dependencies=auth, include_in_schema=False)
    async def page_feedback(match_id: int, request: Request) -> RedirectResponse:
        _row_id(match_id, "match id")  # cross-site posts were refused by _Guard
        relevant = (await _form(request)).get("relevant", "1") in ("1", "true", "yes")

        def write() -> None:
            with db.session_scope(runtime.sessions) as s:
                read_models.record_feedback(s, match_id, relevant)

        await run_in_threadpool(write)
        return RedirectResponse(f"/#m{match_id}", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form() -> HTMLResponse:
        return HTMLResponse(env.get_template("login.html.j2").render(error=False))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token_in = (await _form(request)).get("token", "")
        role = access.token_role(token_in) if secret else None
        if role is None:
            return HTMLResponse(env.get_template("login.html.j2").render(error=True), 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            make_session(access.signing_token(role)),
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(env.get_template("docs.html.j2").render(title=app.title))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = ASSETS.get(name)
        if path is None:
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

    link_key = signing.server_key(secret)

    @app.get("/judge/{match_id}/{verdict}", response_class=HTMLResponse, include_in_schema=False)
    def judge_confirm(
        match_id: int, verdict: str, s: DbSession, expires: str = "", sig: str = ""
    ) -> HTMLResponse:
        # a signed alert link: GET only shows a confirmation (link previewers must not judge)
        return _judge_page(env, s, link_key, match_id, verdict, expires, sig, record=False)

    @app.post("/judge/{match_id}/{verdict}", response_class=HTMLResponse, include_in_schema=False)
    async def judge_record(match_id: int, verdict: str, request: Request) -> HTMLResponse:
        form = await _form(request)
        query = request.query_params
        expires = form.get("expires") or query.get("expires", "")
        sig = form.get("sig") or query.get("sig", "")

        def write() -> HTMLResponse:
            with db.session_scope(runtime.sessions) as s:
                return _judge_page(env, s, link_key, match_id, verdict, expires, sig, record=True)

        return await run_in_threadpool(write)

    @app.get("/topics/{name}/feed.xml", summary="Atom feed of a topic's alerted matches")
    def topic_feed(name: str, request: Request, s: DbSession, token: str = "") -> Response:
        # a feed reader cannot send the bearer token: the topic's own read token opens it
        if secret and not (link_key and token and signing.feed_token_ok(link_key, name, token)):
            require_reader(request)
        site = runtime.config.api.public_url or str(request.base_url).rstrip("/")
        self_url = site + signing.feed_path(None, name)
        items = published.alerted_matches(s, name)
        body = atom.topic_feed(name, items, self_url=self_url, site_url=site + "/")
        return Response(body, media_type=atom.CONTENT_TYPE)

    install_pages(app)
    return app


def _judge_page(
    env: jinja2.Environment,
    s: Any,
    key: bytes | None,
    match_id: int,
    verdict: str,
    expires: str,
    sig: str,
    *,
    record: bool,
) -> HTMLResponse:
    """The page a signed judgement link opens: refused (403), a confirmation form, or, on
    POST, the recorded judgement. The signature covers match id, verdict and expiry."""
    template = env.get_template("judge.html.j2")
    headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    refusal = signing.judgement_refusal(key, match_id, verdict, expires, sig)
    if refusal:
        return HTMLResponse(template.render(error=refusal), 403, headers)
    try:
        brief = published.match_brief(s, match_id)
    except NotFoundError as exc:
        return HTMLResponse(template.render(error=str(exc)), 404, headers)
    relevant = verdict == "relevant"
    if record:
        read_models.record_feedback(s, match_id, relevant)
        event(log, logging.INFO, "feedback from alert link", match_id=match_id, verdict=verdict)
    html = template.render(
        error="",
        m=brief,
        done=record,
        label="relevant" if relevant else "not relevant",
        expires=expires,
        sig=sig,
    )
    return HTMLResponse(html, 200, headers)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the page's only forms), without python-multipart."""
    body = (await request.body())[:65536].decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _topics_with_matches(s: Any, per_topic: int = 10) -> list[dict[str, Any]]:
    out = []
    for topic in read_models.list_topics(s):
        if not topic["active"] and not topic["matches"]:
            continue
        items, _ = read_models.list_matches(
            s, read_models.MatchFilter(topic=topic["name"], limit=per_topic)
        )
        out.append({**topic, "recent": items})
    return out


def _health(runtime: Runtime) -> JSONResponse:
    config = runtime.config
    max_age = max(config.api.heartbeat_max_age, 3 * config.polling.tick)
    try:
        with db.session_scope(runtime.sessions) as s:
            alive = queries.liveness(s, max_age)
    except Exception as exc:  # any database failure means unhealthy, with the reason shown
        # the class name only: driver messages can carry connection details
        return JSONResponse(
            {"status": "unhealthy", "database": f"error: {type(exc).__name__}"}, 503
        )
    body = {
        "status": "ok" if alive.healthy else "unhealthy",
        "database": "ok",
        "last_tick": alive.last_tick.isoformat() if alive.last_tick else None,
        "tick_age_s": round(alive.age_s, 1) if alive.age_s is not None else None,
        "max_age_s": max_age,
    }
    return JSONResponse(body, 200 if alive.healthy else 503)


class _DbCollector:
    """Counts read from the database at scrape time, so every worker reports the same truth."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        model_id = search.current_model_id(self.runtime)
        with db.session_scope(self.runtime.sessions) as s:
            snap = read_models.metrics_snapshot(s, model_id)
            last = read_models.last_heartbeat(s)
        feeds = GaugeMetricFamily("monitor_feeds", "Feeds by state.", labels=["state"])
        for state in ("ok", "new", "erroring", "disabled"):
            feeds.add_metric([state], snap["feeds"].get(state, 0))
        yield feeds
        yield GaugeMetricFamily(
            "monitor_articles_stored", "Articles in the database.", value=snap["articles"]
        )
        yield GaugeMetricFamily(
            "monitor_embedding_backlog",
            "Articles without an embedding for the current model (deferred ones are made when matching is idle).",
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
    app = create_app(runtime, host=host)
    threading.Thread(
        target=search.warm_up, args=(runtime,), name="search-warm-up", daemon=True
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
