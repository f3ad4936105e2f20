"""What moves between monitor and other tools: `monitor topics feed-url` (a topic's Atom feed
for a feed reader) and `monitor feeds import|export` (OPML subscription lists).

Kept apart from ``topics_cmd`` and ``feeds_cmd`` so those stay about managing topics and feeds;
the commands still appear under ``monitor topics`` and ``monitor feeds``.
"""

from __future__ import annotations

import typer

from monitor import signing
from monitor.cli import common
from monitor.cli.topics_cmd import topics_app
from monitor.config import Config
from monitor.errors import NotFoundError


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


def register(app: typer.Typer) -> None:
    """Commands are added to the ``topics`` and ``feeds`` groups; nothing at the top level."""
