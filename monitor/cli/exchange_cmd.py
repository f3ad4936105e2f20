"""What moves between monitor and other tools: `monitor topics feed-url` (a topic's Atom feed
for a feed reader) and `monitor feeds import|export` (OPML subscription lists).

Kept apart from ``topics_cmd`` and ``feeds_cmd`` so those stay about managing topics and feeds;
the commands still appear under ``monitor topics`` and ``monitor feeds``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from monitor import signing
from monitor.cli import common
from monitor.cli.feeds_cmd import feeds_app
from monitor.cli.topics_cmd import topics_app
from monitor.config import Config
from monitor.errors import MonitorError, NotFoundError
from monitor.pipeline import subscriptions
from monitor.store import db


def api_base(config: Config) -> str:
    """Where readers reach the API: ``api.public_url``, else the address it listens on."""
    if config.api.public_url:
        return config.api.public_url
    host = config.api.host if ":" not in config.api.host else f"[{config.api.host}]"
    return f"http://{host}:{config.api.port}"


@topics_app.command("feed-url")
def feed_url(name: str = typer.Argument(..., help="Topic name.")) -> None:
    """Print the address of a topic's Atom feed (its alerted matches, newest first).

    With api.token set, the address carries the topic's own read token (?token=), so a feed
    reader can subscribe without the API token; the token opens this feed only. Changing
    api.token changes every feed token.

    Example: monitor topics feed-url nk-russia-alliance
    """
    config = common.config()
    if name not in {t.name for t in config.topics}:
        known = ", ".join(t.name for t in config.topics) or "none"
        raise NotFoundError(f'no topic named "{name}" in the config (topics: {known})')
    key = signing.server_key(config.api.token.get_secret_value())
    typer.echo(api_base(config) + signing.feed_path(key, name))
    if key is None:
        typer.echo(
            "note: api.token is not set: the feed is open to anyone who reaches the API", err=True
        )


@feeds_app.command("import")
def import_opml(
    file: Path = typer.Argument(..., help="An OPML file, as feed readers export it."),
) -> None:
    """Add the feeds of an OPML subscription list; its categories (folders) become tags.

    Feeds already stored or listed twice are skipped and counted. A file that is not
    well-formed OPML is refused whole: nothing is imported.

    Example: monitor feeds import subscriptions.opml
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise MonitorError(f"{file}: cannot read: {exc.strerror or exc}") from None
    listing = subscriptions.read_list(data, str(file))
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        report = subscriptions.import_opml(session, listing)
    typer.echo(report.summary())


@feeds_app.command("export")
def export_opml(
    fmt: str = typer.Option("opml", "--format", "-f", help="opml (the only format so far)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output."
    ),
) -> None:
    """Write every stored feed as an OPML 2.0 subscription list, tags as categories (folders).

    Example: monitor feeds export > monitor-feeds.opml
    """
    if fmt != "opml":
        raise MonitorError(f'--format: "{fmt}" is not a known format (known: opml)')
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        data, count = subscriptions.export_opml(session)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        typer.echo(f"exported {count} feeds to {output}", err=True)


def register(app: typer.Typer) -> None:
    """Commands are added to the ``topics`` and ``feeds`` groups; nothing at the top level."""
