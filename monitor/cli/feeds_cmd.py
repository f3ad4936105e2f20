"""`monitor feeds list|add|remove`."""

from __future__ import annotations

from typing import Any

import typer

from monitor.cli import common
from monitor.config import Config
from monitor.pipeline import subscriptions
from monitor.redact import redact_text, redact_url
from monitor.store import db, queries, read_models
from monitor.store.models import Feed

feeds_app = common.sub_app("List, add and remove feeds.")


def feed_row(feed: Feed) -> dict[str, Any]:
    return {
        "id": feed.id,
        "name": feed.name or feed.title,
        "url": redact_url(feed.url),
        "moved_to": redact_url(feed.redirect_url) if feed.redirect_url else None,
        "health": redact_text(feed.health_detail),
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
            tagged = set(read_models.feed_ids_tagged(session, tag))
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
    <link rel="alternate" type="application/rss+xml">. A feed already known is not added twice;
    one removed with `feeds remove` is polled again.

    Example: monitor feeds add https://example.org/rss.xml --interval 30m
    """
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        try:
            added = subscriptions.add_feed(
                session,
                rt.config.polling,
                url,
                name=name,
                interval_s=interval,
                find=not no_discover,
            )
        except subscriptions.FeedExists as exc:
            raise common.fail(str(exc), code=2) from None
    if added.found_on:
        typer.echo(f"found feed {added.url} on {added.found_on}")
    if added.restored:
        typer.echo(f"feed {added.id}: {added.url} (removed earlier; polled again, history kept)")
    else:
        typer.echo(f"feed {added.id}: {added.url}")


@feeds_app.command("remove")
def remove(
    key: str = typer.Argument(
        ..., help="Feed id, URL or name.", parser=common.feed_key, metavar="FEED"
    ),
    purge: bool = typer.Option(
        False, "--purge", help="Delete the feed with its articles, matches and deliveries."
    ),
) -> None:
    """Stop polling a feed. Its articles, matches and deliveries are kept (the feed shows as
    disabled) unless --purge deletes them. A feed listed in config.toml is removed there.

    Example: monitor feeds remove 12
    """
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        feed = queries.find_feed(session, key)
        _refuse_config_feed(rt.config, feed)
        if queries.is_removed(feed) and not purge:
            raise common.fail(
                f"feed {feed.id} is already removed (not polled, history kept); "
                f"`monitor feeds remove {feed.id} --purge` deletes it",
                code=2,
            )
        removal = queries.remove_feed(session, str(feed.id), purge=purge)
    history = (
        f"{_count(removal.articles, 'article')}, {_count(removal.matches, 'match')} and "
        f"{_count(removal.deliveries, 'delivery')}"
    )
    if removal.purged:
        typer.echo(f"deleted feed {removal.id}: {removal.url} with its {history}")
    else:
        typer.echo(
            f"disabled feed {removal.id}: {removal.url}; no longer polled, its {history} "
            f"are kept (`monitor feeds remove {removal.id} --purge` deletes them, "
            f"`monitor feeds add {removal.url}` polls it again)"
        )


def _count(n: int, noun: str) -> str:
    plural = (
        noun[:-1] + "ies" if noun.endswith("y") else noun + ("es" if noun.endswith("h") else "s")
    )
    return f"{n} {noun if n == 1 else plural}"


def _refuse_config_feed(config: Config, feed: Feed) -> None:
    """A config feed would come back on the next sync: it is removed by editing config.toml."""
    where = subscriptions.config_entry(config, feed)
    if where:
        raise common.fail(
            f"feed {feed.id} is listed in {where}: delete that [[feeds]] entry to remove it",
            code=2,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(feeds_app, name="feeds")
