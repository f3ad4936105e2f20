"""`monitor config check|show`."""

from __future__ import annotations

import typer

from monitor.cli import common
from monitor.config import check_config, config_path_from_env, format_duration
from monitor.errors import ConfigError
from monitor.redact import redact_text, redact_url

config_app = common.sub_app("Check and inspect the configuration.")


@config_app.command("check")
def check() -> None:
    """Validate config.toml (syntax, keys, types, ${VAR}s, seed files) and summarise it.

    Exits 2 with one message per problem, naming file, line and field: every problem at
    once, unset ${VAR}s of enabled alert channels included (other commands only need those
    when they send).

    Example: monitor --config config.toml config check
    """
    cfg, problems = check_config(config_path_from_env(common.STATE.config_path))
    if cfg is None or problems:
        raise ConfigError("\n".join(problems))
    channels = ", ".join(
        f"{n} ({c.type}{'' if c.enabled else ', disabled'})" for n, c in cfg.alerts.items()
    )
    typer.echo(f"{cfg.path}: OK")
    typer.echo(f"  database: {redact_url(cfg.database.url)}")
    typer.echo(f"  model:    {cfg.model.name} on {cfg.model.device}")
    typer.echo(
        f"  feeds:    {len(cfg.feeds)} (default interval {format_duration(cfg.polling.interval)})"
    )
    typer.echo(f"  topics:   {', '.join(t.name for t in cfg.topics) or 'none'}")
    typer.echo(f"  channels: {channels or 'none'}")


@config_app.command("show")
def show() -> None:
    """Print the effective configuration as JSON, secrets masked.

    Secret fields print as ``**********``; passwords and tokens inside URLs (the database URL,
    feed URLs) as ``***``.

    Example: monitor config show
    """
    cfg = common.config()
    typer.echo(redact_text(cfg.model_dump_json(indent=2)))


@config_app.command("docs")
def docs() -> None:
    """Print every setting with its default and help text as a Markdown table (for the README).

    Example: monitor config docs > settings.md
    """
    from monitor.config import iter_documented_fields

    typer.echo("| setting | meaning |\n|---|---|")
    for path, help_text in iter_documented_fields():
        typer.echo(f"| `{path}` | {help_text} |")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
