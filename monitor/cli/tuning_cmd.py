"""`monitor feedback` (judge a match), `monitor eval` (calibrate on labeled items) and
`monitor embed` (embed stored articles again after a change of model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer

from monitor import evaluate as ev
from monitor.cli import common
from monitor.embed import load_embedder, model_id_for
from monitor.pipeline import matching as stage
from monitor.store import db, matches
from monitor.store.models import Topic

Judgement = Literal["relevant", "irrelevant"]


def feedback(
    match_id: int = typer.Argument(
        ...,
        help="The match's id (shown in alerts and lists), e.g. 42 or m42.",
        parser=common.match_id,
        metavar="MATCH_ID",
    ),
    judgement: Judgement = typer.Argument(
        ..., help="relevant or irrelevant.", case_sensitive=False
    ),
) -> None:
    """Judge a match; the topic then uses the article as a positive or negative exemplar.

    Example: monitor feedback 42 irrelevant
    """
    value = judgement
    with common.runtime() as rt, db.session_scope(rt.sessions) as session:
        row = matches.record_feedback(session, match_id, value == "relevant")
        topic = session.get(Topic, row.topic_id)
        name = topic.name if topic else row.topic_id
    typer.echo(f"match {match_id}: recorded as {value} for topic {name}")


def eval_(
    data: Path = typer.Argument(
        ..., help="JSONL file: one object per line with title, text, lang, relevant.", exists=False
    ),
    fmt: common.ReportFormat = typer.Option("table", "--format", "-f", help="table or json."),
    no_require: bool = typer.Option(
        False, "--no-require", help="Switch off require/exclude groups: score by meaning only."
    ),
) -> None:
    """Precision, recall, F1 and C_det_norm of the configured topics on labeled items.

    An item counts as predicted relevant when any topic matches it. Figures are printed at the
    configured thresholds and at the best threshold (the shift of all thresholds that gives the
    highest F1), overall and per language.

    Example: monitor eval labeled.jsonl --format json
    """
    cfg = common.config()
    items = ev.read_labeled(data)
    embedder = load_embedder(cfg.model)
    params = stage.scoring_params(cfg, use_require=not no_require)
    topics = ev.build_topics(cfg, embedder, params=params)
    with typer.progressbar(length=len(items), label="embedding", file=_stderr()) as bar:
        vectors = ev.embed_items(embedder, items, cfg.model.max_seq_length, progress=bar.update)
    report = ev.evaluate(topics, items, vectors, params).report()
    report["mode"] = "semantic-only" if no_require else "hybrid"
    report["warnings"] = eval_warnings(report)
    for warning in report["warnings"]:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if fmt == "json":
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        _print_report(report)


def eval_warnings(report: dict[str, Any]) -> list[str]:
    """What makes the recommended threshold meaningless, said plainly.

    When no item matches any topic, the "best" threshold is simply one low enough to accept
    everything (e.g. -0.95): following it would alert on every article.
    """
    warnings = []
    if report["n"] and report["tp"] + report["fp"] == 0:
        warnings.append(
            "no item matches any topic at the configured thresholds: check the topics' "
            "require groups (try --no-require), their language and the labels"
        )
    best = report["at_best_threshold"]
    if best["n"] and best["tp"] + best["fp"] == best["n"]:
        warnings.append(
            "the best threshold accepts every item, so it does not separate relevant from "
            "irrelevant items: do not use it as a threshold"
        )
    return warnings


def embed(
    embed_all: bool = typer.Option(
        False, "--all", help="Embed them now (with a progress bar) instead of only counting."
    ),
) -> None:
    """Count, or with --all embed, stored articles that have no vector by the configured model.

    After a change of [model] (name, max_seq_length, or an E5 model's prefix scheme) stored
    vectors are stale: new articles get vectors as they are matched, and this command embeds
    the older ones, so that search and story grouping see them. Stop the daemon first.

    Example: monitor embed --all
    """
    with common.runtime() as rt:
        pending = stage.count_without_vector(rt)
        model_id = model_id_for(rt.config.model)
        if not embed_all or not pending:
            typer.echo(f"{pending} stored articles have no vector by {model_id}")
            return
        with typer.progressbar(length=pending, label="embedding", file=_stderr()) as bar:
            done = stage.embed_stored(rt, progress=bar.update)
    typer.echo(f"embedded {done} articles with {model_id}")


def _stderr() -> Any:
    import sys

    return sys.stderr


def _print_report(report: dict[str, Any]) -> None:
    thresholds = ", ".join(f"{k}={v:g}" for k, v in report["thresholds"].items())
    typer.echo(f"mode: {report['mode']}   items: {report['n']}   relevant: {report['relevant']}")
    _print_block(f"at configured thresholds ({thresholds})", report)
    best = ", ".join(f"{k}={v:g}" for k, v in report["best_thresholds"].items())
    _print_block(
        f"at best threshold ({best}; shift {report['best_threshold_offset']:+.4f})",
        report["at_best_threshold"],
    )


def _print_block(title: str, figures: dict[str, Any]) -> None:
    typer.echo("")
    typer.echo(title)
    rows = [{"language": "all", **figures}]
    rows += [{"language": lang, **f} for lang, f in figures["per_language"].items()]
    common.print_rows(
        rows,
        ["language", "n", "relevant", "precision", "recall", "f1", "c_det_norm", "tp", "fp", "fn"],
    )


def register(app: typer.Typer) -> None:
    app.command("feedback")(feedback)
    app.command("eval")(eval_)
    app.command("embed")(embed)
