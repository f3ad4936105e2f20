"""`monitor topics list|test|preview`: inspect topics and try them before going live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import typer

from monitor import match
from monitor.cli import common
from monitor.config import parse_duration
from monitor.embed import PASSAGE, article_text
from monitor.errors import MonitorError
from monitor.pipeline import matching as stage
from monitor.store import db
from monitor.store import matching as store

topics_app = typer.Typer(help="Inspect and try out topics.", no_args_is_help=True)

PREVIEW_LIMIT = 50_000
HISTOGRAM_BINS = np.round(np.arange(-0.2, 1.21, 0.1), 2)


@topics_app.command("list")
def list_(fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv.")) -> None:
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
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
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
        verdicts = [match.score_one(model, text, vector, params) for _, model in models]
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
        if row["missing_groups"]:
            typer.echo(f"  require groups missing: {', '.join(map(str, row['missing_groups']))}")
        if row["excluded_by"]:
            typer.echo(f"  vetoed by exclude alias: {row['excluded_by']}")


def _verdict_row(verdict: match.Verdict, threshold: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "topic": verdict.topic,
        "decision": "MATCH" if verdict.matched else "no match",
        "threshold": threshold,
    }
    row.update(match.explanation_dict(verdict.explanation))
    row["score"] = verdict.score
    return row


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@topics_app.command("preview")
def preview(
    since: str = typer.Option("7d", "--since", help='How far back to look, e.g. "7d", "12h".'),
    sample: int = typer.Option(5, "--sample", help="Matching articles shown per topic."),
) -> None:
    """How many stored articles each topic would match at its threshold, with a sample and a
    score histogram, to tune thresholds before going live.

    Example: monitor topics preview --since 7d
    """
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise MonitorError(f"--since: {exc}") from None
    start = datetime.now(UTC) - timedelta(seconds=window)
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        articles = store.articles_since(session, start, PREVIEW_LIMIT)
        if not articles:
            typer.echo(f"no stored articles published in the last {since}")
            return
        embedder = stage.get_embedder(rt)
        models = stage.topic_models(rt, session)
        vectors, _ = stage.ensure_vectors(
            session, embedder, articles, rt.config.model.max_seq_length
        )
        matrix = np.vstack([vectors[a.id] for a in articles])
        texts = [stage.full_text(a) for a in articles]
        typer.echo(f"{len(articles)} stored articles published in the last {since}")
        params = stage.scoring_params(rt.config)
        for _, model in models:
            _preview_topic(model, articles, texts, matrix, sample, params)


def _preview_topic(
    model: match.TopicModel,
    articles: list[Any],
    texts: list[str],
    matrix: np.ndarray,
    sample: int,
    params: match.ScoringParams,
) -> None:
    verdicts = match.score_many(model, texts, matrix, params)
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


def histogram_lines(scores: np.ndarray, threshold: float, width: int = 40) -> list[str]:
    """Text histogram in 0.1 bins; the bin holding the threshold is marked with '<- threshold'."""
    clipped = np.clip(scores, HISTOGRAM_BINS[0], HISTOGRAM_BINS[-1] - 1e-9)
    counts, edges = np.histogram(clipped, bins=HISTOGRAM_BINS)
    peak = max(int(counts.max()), 1)
    lines = []
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        if count == 0 and not low <= threshold < high:
            continue
        bar = "#" * max(1 if count else 0, round(width * int(count) / peak))
        mark = "  <- threshold" if low <= threshold < high else ""
        lines.append(f"[{low:+.1f}, {high:+.1f})  {int(count):6d}  {bar}{mark}")
    return lines


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
