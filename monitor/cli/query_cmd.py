"""`monitor matches`, `monitor search`, `monitor show`, `monitor serve`: looking things up."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import typer

from monitor.cli import common
from monitor.errors import ConfigError
from monitor.search import MIN_SCORE_HELP, search_articles
from monitor.store import db, read_models

MATCH_COLUMNS = ["match_id", "article_id", "published", "topic", "score", "source", "title"]
SEARCH_COLUMNS = ["article_id", "similarity", "published", "language", "source", "title"]
FORMAT_HELP = "table (default), json or csv."


def when(value: str) -> datetime:
    """typer parser: ``"7d"`` / ``"36h"`` ago, or a date; never an OverflowError."""
    try:
        parsed = read_models.parse_when(value)
    except OverflowError:
        raise ValueError(f'"{value}" goes back further than the calendar does') from None
    if parsed is None:
        raise ValueError('expected a duration like "7d" or a date like "2026-11-20"')
    return parsed


def show_key(value: str) -> str:
    """typer parser: ``a123`` / ``123`` (article) or ``m45`` (match), within the id range."""
    text = value.strip().lower()
    digits = text[1:] if text[:1] in ("a", "m") else text
    try:
        common.database_id(digits)
    except ValueError:
        raise ValueError(
            f'expected an article id (a123 or 123) or a match id (m45), got "{value}"'
        ) from None
    return text


def matches(
    topic: str | None = typer.Option(None, "--topic", "-t", help="Topic name."),
    since: datetime | None = typer.Option(
        None, "--since", help='"7d", "36h" ago, or a date.', parser=when, metavar="WHEN"
    ),
    until: datetime | None = typer.Option(
        None, "--until", help="Date or duration ago (exclusive).", parser=when, metavar="WHEN"
    ),
    min_score: float | None = typer.Option(None, "--min-score", help="Lowest score shown."),
    feed: str | None = typer.Option(
        None, "--feed", help="Feed id, URL or name.", parser=common.feed_key, metavar="FEED"
    ),
    tag: str | None = typer.Option(
        None, "--tag", help="Only matches from feeds with this tag (config.toml feeds.tags)."
    ),
    lang: str | None = typer.Option(None, "--lang", help="Only articles in this language (en)."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=read_models.MAX_LIMIT, help="Rows."),
    cursor: str | None = typer.Option(
        None,
        "--cursor",
        help="Next-page cursor printed by a previous call (json/csv print it on stderr).",
    ),
    fmt: common.TableFormat = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """List matches, newest first: title, source, published, topic, score.

    Example: monitor matches --topic nk-russia-alliance --since 7d --tag world --limit 20
    """
    flt = read_models.MatchFilter(
        topic=topic,
        since=since,
        until=until,
        min_score=min_score,
        feed=feed,
        tag=tag,
        lang=lang,
        limit=limit,
        cursor=cursor,
    )
    with common.read_runtime() as rt, db.session_scope(rt.sessions) as session:
        try:
            rows, next_cursor = read_models.list_matches(session, flt)
        except ValueError as exc:
            raise ConfigError(f"--cursor: {exc}") from None
    common.print_rows(
        rows, MATCH_COLUMNS if fmt == "table" else _all_keys(rows, MATCH_COLUMNS), fmt
    )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}", err=True)


def _all_keys(rows: list[dict[str, Any]], default: list[str]) -> list[str]:
    return list(rows[0].keys()) if rows else default


def search_cmd(
    text: str = typer.Argument(..., help="Free text, any language the model knows."),
    since: datetime | None = typer.Option(
        None, "--since", help='"7d" ago, or a date.', parser=when, metavar="WHEN"
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=read_models.MAX_LIMIT, help="Rows."),
    lang: str | None = typer.Option(None, "--lang", help="Only articles in this language (en)."),
    min_score: float | None = typer.Option(None, "--min-score", help=MIN_SCORE_HELP),
    fmt: common.TableFormat = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Semantic search over every stored article (not only matches), most similar first.

    Only articles at least --min-score similar are listed; with a multilingual model the
    query's language does not matter (an Indonesian query finds English reports).

    The first search builds a vector cache next to the database (see api.search_cache);
    later ones only read what changed.

    Example: monitor search "troops sent to Russia" --since 30d --limit 10
    """
    with common.read_runtime() as rt:
        rows = search_articles(
            rt, text, limit=limit, since=since, lang=lang, min_score=min_score, one_shot=True
        )
    common.print_rows(
        rows, SEARCH_COLUMNS if fmt == "table" else _all_keys(rows, SEARCH_COLUMNS), fmt
    )


def show(
    key: str = typer.Argument(
        ..., help="Article id (a123 or 123) or match id (m45).", parser=show_key, metavar="KEY"
    ),
    fmt: Literal["text", "json"] = typer.Option(
        "text", "--format", "-f", help="text (default) or json."
    ),
) -> None:
    """Show an article, its matches with their explanations, its story and deliveries.

    Example: monitor show m45
    """
    with common.read_runtime() as rt, db.session_scope(rt.sessions) as session:
        detail = read_models.article_detail(session, read_models.resolve_show_key(session, key))
    if fmt == "json":
        typer.echo(json.dumps(detail, ensure_ascii=False, default=str, indent=2))
        return
    for line in render_detail(detail):
        typer.echo(line)


def render_detail(detail: dict[str, Any]) -> list[str]:
    """The readable form of :func:`monitor.store.read_models.article_detail`."""
    feed = detail.get("feed") or {}
    lines = [
        f"article a{detail['article_id']}: {detail['title']}",
        f"  source:    {feed.get('name') or '-'} ({feed.get('url') or '-'})",
        f"  published: {common._cell(detail['published'])}   language: {detail['language'] or '-'}",
        f"  link:      {detail['link'] or '-'}",
    ]
    if detail["summary"]:
        lines.append(f"  summary:   {_clip(common._cell(detail['summary']), 300)}")
    page = detail.get("page") or {}
    if page.get("lead"):
        lines.append(f"  page lead: {_clip(common._cell(page['lead']), 300)}")
    elif page:
        lines.append(f"  page:      {page['status']} {common._cell(page['reason'])}".rstrip())
    if not detail["matches"]:
        lines.append("  no matches")
    for m in detail["matches"]:
        lines += _render_match(m)
    return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _render_match(m: dict[str, Any]) -> list[str]:
    out = [
        f"  match m{m['match_id']}: topic {m['topic']}  score {m['score']:.3f} "
        f"(semantic {m['semantic_score']:.3f})  alerted: {'yes' if m['alerted'] else 'no'}"
    ]
    if m["passage"]:
        out.append(f'    because:  "{_clip(common._cell(m["passage"]), 200)}"')
    if m["aliases"]:
        out.append(f"    aliases:  {', '.join(m['aliases'])}")
    story = m["story"]
    if story:
        out.append(f"    story {story['id']}: {story['title']} ({story['article_count']} articles)")
    for d in m["deliveries"]:
        error = f"  error: {d['last_error']}" if d["last_error"] else ""
        out.append(
            f"    delivery {d['id']}: {d['channel']} {d['status']} "
            f"({d['attempts']} attempts){error}"
        )
    if m["feedback"] is not None:
        out.append(f"    feedback: {'relevant' if m['feedback'] else 'not relevant'}")
    return out


def serve(
    host: str | None = typer.Option(None, "--host", help="Listen address (default api.host)."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Listen port (default api.port)."
    ),
) -> None:
    """Serve the HTTP API, /metrics, /healthz and the web page (without running the daemon).

    Beyond loopback a bearer token (api.token, e.g. ${MONITOR_API_TOKEN}) is required.

    Example: MONITOR_API_TOKEN=secret monitor serve --host 0.0.0.0 --port 8080
    """
    from monitor.api import serve_forever
    from monitor.logs import setup_logging

    config = common.config()
    setup_logging(
        "DEBUG" if common.STATE.verbose else config.logging.level,
        common.STATE.log_format or config.logging.format,
    )
    with common.runtime() as rt:
        serve_forever(rt, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("matches")(matches)
    app.command("search")(search_cmd)
    app.command("show")(show)
    app.command("serve")(serve)
