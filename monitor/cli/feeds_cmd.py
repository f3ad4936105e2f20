"""`monitor feeds list|add|remove`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from monitor.cli import common
from monitor.feeds.discover import discover
from monitor.store import db, queries, search
from monitor.store.models import Feed

feeds_app = common.sub_app("List, add and remove feeds.")


def feed_health(feed: Feed) -> str:
    if not feed.enabled:
        return f"disabled: {feed.disabled_reason}" if feed.disabled_reason else "disabled"
    if feed.consecutive_errors:
        return f"erroring ({feed.consecutive_errors}x): {feed.last_error}"
    if feed.last_success_at is None:
        return "new"
    return "ok"


def feed_row(feed: Feed) -> dict[str, Any]:
    return {
        "id": feed.id,
        "name": feed.name or feed.title,
        "url": feed.url,
        "health": feed_health(feed),
        "last_status": feed.last_status,
        "last_success": feed.last_success_at,
        "next_poll": feed.next_poll_at if feed.enabled else None,
        "tags": ", ".join(str(t) for t in feed.tags or ()),
    }


@feeds_app.command("list")
def list_(
    fmt: common.TableFormat = typer.Option("table", "--format", "-f", help="table, json or csv."),
    tag: str | None = typer.Option(
        None, "--tag", help="Only feeds with this tag (config.toml feeds.tags)."
    ),
) -> None:
    """Show every feed with its health (ok / erroring with the error / disabled), last success
    and next poll.

    Example: monitor feeds list --tag world --format json
    """
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        feeds = queries.list_feeds(session)
        if tag:
            tagged = set(search.feed_ids_tagged(session, tag))
            feeds = [f for f in feeds if f.id in tagged]
        rows = [feed_row(f) for f in feeds]
    columns = ["id", "name", "health", "last_success", "next_poll", "tags", "url"]
    common.print_rows(rows, columns, fmt)


@feeds_app.command("add")
def add(
    url: str = typer.Argument(..., help="Feed URL, or a web page that links to its feed."),
    name: str = typer.Option("", "--name", help="Display name."),
    interval: float | None = typer.Option(
        None,
        "--interval",
        help='Poll interval like "15m".',
        parser=common.duration,
        metavar="DURATION",
    ),
    no_discover: bool = typer.Option(
        False, "--no-discover", help="Store the URL as given, without fetching it first."
    ),
) -> None:
    """Add a feed to the database (feeds listed in config.toml are added on start).

    The URL is fetched first: a web page is replaced by the feed it advertises with
    <link rel="alternate" type="application/rss+xml">.

    Example: monitor feeds add https://example.org/rss.xml --interval 30m
    """
    interval_s = interval
    if not no_discover:
        found = discover(url, common.config().polling)
        if found != url:
            typer.echo(f"found feed {found} on {url}")
        url = found
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        feed = queries.add_feed(session, url, name=name, interval_s=interval_s)
        feed.next_poll_at = datetime.now(UTC)
        typer.echo(f"feed {feed.id}: {feed.url}")


@feeds_app.command("remove")
def remove(key: str = typer.Argument(..., help="Feed id, URL or name.")) -> None:
    """Remove a feed and its articles. A feed still listed in config.toml comes back on restart.

    Example: monitor feeds remove 12
    """
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        feed = queries.remove_feed(session, key)
        typer.echo(f"removed feed {feed.id}: {feed.url}")


def register(app: typer.Typer) -> None:
    app.add_typer(feeds_app, name="feeds")
