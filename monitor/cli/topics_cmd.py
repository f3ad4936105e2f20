"""`monitor topics list|test|preview`: inspect topics and try them before going live."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from monitor import scoring
from monitor.cli import common
from monitor.config import format_duration, parse_duration
from monitor.embed import PASSAGE, article_text
from monitor.errors import MonitorError
from monitor.pipeline import matching as stage
from monitor.pipeline import preview as previewing
from monitor.store import db

if TYPE_CHECKING:
    from monitor.pipeline.suggest import Group, Suggestion

topics_app = common.sub_app("Inspect and try out topics.")


@topics_app.command("list")
def list_(
    fmt: common.TableFormat = typer.Option("table", "--format", "-f", help="table, json or csv."),
) -> None:
    """Show configured topics with their threshold, seeds and channels.

    Example: monitor topics list
    """
    cfg = common.config()
    rows = [
        {
            "name": t.name,
            "threshold": t.threshold,
            "seeds": ", ".join(str(s) for s in t.seed),
            "require_groups": len(t.require),
            "channels": ", ".join(t.channels),
        }
        for t in cfg.topics
    ]
    common.print_rows(rows, ["name", "threshold", "require_groups", "channels", "seeds"], fmt)


@topics_app.command("test")
def try_text(
    text: str = typer.Argument("", help="Article text: its first line is read as the title."),
    file: Path | None = typer.Option(None, "--file", help="Read the article from this file."),
    fmt: common.ReportFormat = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Score a text against every topic: score, decision and why.

    Example: monitor topics test "Kim Jong Un meets Putin in Vladivostok"
    """
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise MonitorError(f"{file}: cannot read: {exc}") from None
    if not text.strip():
        raise MonitorError("give a TEXT argument or --file PATH")
    title, _, body = text.strip().partition("\n")
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        embedder = stage.get_embedder(rt)
        models = stage.topic_models(rt, session)
        text_in = article_text(title, body, rt.config.model.max_seq_length)
        vector = embedder.encode([text_in], kind=PASSAGE)[0]
        params = stage.scoring_params(rt.config)
        verdicts = [scoring.score_one(model, text, vector, params) for _, model in models]
    rows = [_verdict_row(v, m.threshold) for v, (_, m) in zip(verdicts, models, strict=True)]
    if fmt == "json":
        common.print_rows(rows, list(rows[0]) if rows else [], "json")
        return
    for row in rows:
        typer.echo(
            f"{row['topic']}: {row['decision']}  score {row['score']:.3f} "
            f"(threshold {row['threshold']:g}, semantic {row['semantic']:.3f})"
        )
        typer.echo(f"  closest passage ({row['passage_source']}): {_clip(row['passage'], 160)}")
        typer.echo(f"  aliases matched: {', '.join(row['aliases']) or '(none)'}")
        for group in row["missing_groups"]:
            typer.echo(f"  vetoed, require group missing: {scoring.group_label(group)}")
        if row["excluded_by"]:
            typer.echo(f"  vetoed by exclude alias: {row['excluded_by']}")


def _verdict_row(verdict: scoring.Verdict, threshold: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "topic": verdict.topic,
        "decision": "MATCH" if verdict.matched else "no match",
        "threshold": threshold,
    }
    row.update(scoring.explanation_dict(verdict.explanation))
    row["score"] = verdict.score
    return row


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@topics_app.command("preview")
def preview(
    since: float = typer.Option(
        "7d",
        "--since",
        help='How far back to look, e.g. "7d", "12h".',
        parser=common.duration,
        metavar="DURATION",
    ),
    sample: int = typer.Option(5, "--sample", min=0, help="Matching articles shown per topic."),
    topic: str | None = typer.Option(
        None, "--topic", "-t", help="Preview only this topic (default: every topic)."
    ),
) -> None:
    """How many stored articles each topic would match at its threshold, with a sample and a
    histogram of every score, to tune thresholds before going live.

    Example: monitor topics preview --topic nk-russia-alliance --since 7d
    """
    preview_topics(since, sample, topic)


def preview_topics(since: float, sample: int, topic: str | None = None) -> None:
    """`topics preview` over the last ``since`` seconds, for one topic or (None) every one."""
    start = datetime.now(UTC) - timedelta(seconds=since)
    window = format_duration(since)
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        models = _chosen(stage.topic_models(rt, session), topic)
        stored = previewing.stored_articles(rt, session, start)
        if not stored.articles:
            typer.echo(f"no stored articles published in the last {window}")
            return
        typer.echo(f"{len(stored.articles)} stored articles published in the last {window}")
        for _, model in models:
            _preview_topic(model, stored.articles, previewing.score(rt, model, stored), sample)


def _chosen(models: list[Any], topic: str | None) -> list[Any]:
    """The (row, model) pairs to preview: all, or the one named by --topic."""
    if topic is None:
        return models
    chosen = [pair for pair in models if pair[1].name == topic]
    if not chosen:
        known = ", ".join(m.name for _, m in models) or "none"
        raise MonitorError(f'--topic: no topic "{topic}" (configured: {known})')
    return chosen


def _preview_topic(
    model: scoring.TopicModel,
    articles: list[Any],
    verdicts: list[scoring.Verdict],
    sample: int,
) -> None:
    hits = sorted(
        (i for i, v in enumerate(verdicts) if v.matched), key=lambda i: -verdicts[i].score
    )
    typer.echo("")
    typer.echo(
        f"topic {model.name}: {len(hits)} of {len(articles)} would match "
        f"(threshold {model.threshold:g})"
    )
    for i in hits[:sample]:
        a = articles[i]
        typer.echo(
            f"  {verdicts[i].score:.3f}  {a.published_at:%Y-%m-%d %H:%M}  {_clip(a.title, 90)}"
        )
    typer.echo("  score histogram:")
    scores = np.array([v.score for v in verdicts])
    for line in histogram_lines(scores, model.threshold):
        typer.echo("    " + line)


def histogram_edges(scores: np.ndarray, threshold: float) -> np.ndarray:
    """0.1-wide bin edges covering every score and the threshold, nothing clipped.

    Vetoed and penalised articles score well below zero; their real spread is what tells
    whether a lower threshold would let them in, so the range follows the data.
    """
    values = np.append(scores[np.isfinite(scores)], threshold)
    low = int(np.floor(values.min() * 10 + 1e-9))
    high = int(np.floor(values.max() * 10 + 1e-9)) + 1
    return np.arange(low, high + 1) / 10


def histogram_lines(scores: np.ndarray, threshold: float, width: int = 40) -> list[str]:
    """Text histogram in 0.1 bins over the whole score range; the threshold's bin is marked."""
    edges = histogram_edges(scores, threshold)
    counts, _ = np.histogram(scores[np.isfinite(scores)], bins=edges)
    peak = max(int(counts.max()), 1)
    lines = []
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "#" * max(1 if count else 0, round(width * int(count) / peak))
        mark = "  <- threshold" if low <= threshold < high else ""
        lines.append(f"[{low:+.1f}, {high:+.1f})  {int(count):6d}  {bar}{mark}")
    return lines


@topics_app.command("add")
def add(
    name: str = typer.Argument(..., help="Short unique name of the new topic."),
    seed_url: str = typer.Option(
        "", "--seed-url", help="Web page of the seed article: its body is saved under seeds/."
    ),
    seed_file: Path | None = typer.Option(
        None, "--seed-file", help="Seed article as a text or HTML file (copied under seeds/)."
    ),
    description: list[str] = typer.Option(
        [], "--description", "-d", help="What the topic is about, any language (repeatable)."
    ),
    require: list[str] = typer.Option(
        [],
        "--require",
        help='One alias group, aliases separated by commas: "north korea*,pyongyang" '
        "(repeatable; every group must match).",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Score at or above which an article matches (default 0.5)."
    ),
    channel: list[str] = typer.Option(
        [], "--channel", help="Alert channel defined in config.toml (repeatable; default console)."
    ),
    since: float = typer.Option(
        "7d",
        "--since",
        help="Window of the preview printed afterwards.",
        parser=common.duration,
        metavar="DURATION",
    ),
    no_preview: bool = typer.Option(False, "--no-preview", help="Do not print the preview."),
) -> None:
    """Add a topic to config.toml from a seed article, then preview it on stored articles.

    The page is fetched with the polling limits (size cap, timeouts, redirects); its article
    body (no navigation, comments or cookie banners) is saved as seeds/NAME.txt, and a topics
    table is added to config.toml keeping its comments and layout. A bad URL, a page with no
    article text or an existing name changes nothing.

    Example: monitor topics add harbour-ferry --seed-url https://example.org/news/ferry-returns
    """
    from monitor.pipeline.seeding import NewTopic, add_topic

    request = NewTopic(
        name=name,
        seed_url=seed_url,
        seed_file=seed_file,
        descriptions=tuple(description),
        require=tuple(_alias_group(text) for text in require),
        threshold=threshold,
        channels=tuple(channel),
    )
    added = add_topic(common.config(), request)
    typer.echo(f"added topic {added.name} to {added.config.path}")
    if added.article is not None:
        article = added.article
        chars = sum(len(p) for p in article.paragraphs)
        typer.echo(
            f"  seed {added.seed}: {_clip(article.title or article.paragraphs[0], 80)} "
            f"({len(article.paragraphs)} paragraphs, {chars} characters)"
        )
    if not no_preview:
        preview_topics(since, 5, added.name)


def _alias_group(text: str) -> tuple[str, ...]:
    aliases = tuple(a.strip() for a in text.split(",") if a.strip())
    if not aliases:
        raise MonitorError(f'--require "{text}": give aliases separated by commas')
    return aliases


@topics_app.command("suggest")
def suggest(
    name: str = typer.Argument(..., help="A topic of config.toml."),
    since: str = typer.Option("30d", "--since", help="Stored articles looked at, e.g. 30d."),
    groups: int = typer.Option(2, "--groups", min=1, help="Groups proposed; the rest commented."),
    min_similarity: float | None = typer.Option(
        None,
        "--min-similarity",
        help="Semantic score at which a stored article counts as like the seed "
        "(default: the topic's threshold).",
    ),
    min_articles: int = typer.Option(
        2, "--min-articles", min=1, help="Similar articles a spelling must appear in."
    ),
) -> None:
    """Propose `require` alias groups from the seed's names and their spellings in stored
    articles, as TOML to review and paste; config.toml is never changed.

    Names are capitalised words and acronyms of the seed; a spelling in another language is
    a name of similar stored articles that resembles a seed name (spelling or model vector),
    appears with the same other names, and not beside the seed name itself. See the README,
    "Suggested aliases".

    Example: monitor topics suggest nk-russia-alliance --since 30d
    """
    from monitor.pipeline.suggest import suggest_for_topic

    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise MonitorError(f"--since: {exc}") from None
    start = datetime.now(UTC) - timedelta(seconds=window)
    with common.runtime() as rt:
        found = suggest_for_topic(
            rt, name, since=start, min_similarity=min_similarity, min_articles=min_articles
        )
    for line in suggestion_toml(found, since, groups):
        typer.echo(line)


def suggestion_toml(found: Suggestion, since: str, shown: int) -> list[str]:
    """The suggestion as TOML lines: comments say where each group comes from."""
    lines = [
        f"# `require` groups suggested for topic {_toml_comment(found.topic)} by "
        "`monitor topics suggest` (never applied by itself).",
        f"# From the seed's names and their spellings in {found.similar} of {found.window} "
        f"stored articles of the last {since} that are like the seed.",
        "# Every group must match: keep the groups the story cannot do without, join groups "
        "that name one side of it,",
        "# delete what is wrong, paste into the topic's table, and check with `monitor eval` "
        "or `monitor topics preview`.",
    ]
    if not found.groups:
        return [*lines, "# no names found in the seed (capitalised words or acronyms)"]
    lines.append("require = [")
    for group in found.groups[:shown]:
        lines += [f"  # {_group_note(group)}", f"  {_toml_list(group.aliases)},"]
    lines.append("]")
    if found.groups[shown:]:
        lines.append("# more names of the seed (move a line into require to use it):")
        lines += [f"#   {_toml_list(g.aliases)},  # {_group_note(g)}" for g in found.groups[shown:]]
    return lines


def _group_note(group: Group) -> str:
    note = f"{group.name}: {group.seed_count}x in the seed, in {group.articles} stored articles"
    if group.spellings:
        spelled = ", ".join(f"{s.text} ({s.articles})" for s in group.spellings)
        note += f"; spellings: {spelled}"
    return _toml_comment(note)


def _toml_list(values: tuple[str, ...]) -> str:
    """A TOML array of strings (JSON string escapes are valid TOML basic strings)."""
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _toml_comment(text: str) -> str:
    """Feed text inside a comment: one line, no control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
