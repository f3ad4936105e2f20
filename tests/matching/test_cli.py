"""`monitor eval`, `topics test`, `topics preview` and `feedback`, end to end, real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed, Feedback, Match

from .conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]
LABELED = FIXTURES / "labeled.jsonl"
# One require group; at threshold -0.2 the aliases alone decide (score = semantic + 0.15 when
# the group matches, a veto of semantic - 2.0 when it does not), so the confusion matrix is known:
# en: TP 2, FN 1 ("Ash cloud..."), FP 1 (restaurant), TN 2; pl: TP 2, FP 1 (drink), TN 1.
VOLCANO = """
[[topics]]
name = "volcano"
descriptions = ["A volcano erupts"]
require = [["volcano*", "wulkan*"]]
threshold = -0.2
"""
ON_TOPIC = "Kim Jong Un arrives in Russia for talks with Putin\nNorth Korea's leader met Putin."


def invoke(config: Config, *args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(config.path), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout


def test_eval_json_figures_match_a_known_confusion_matrix(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(topics=VOLCANO)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(config.path),
            "eval",
            str(LABELED),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedding" in proc.stderr  # the progress bar goes to stderr, not into the JSON
    report = json.loads(proc.stdout)
    assert (report["tp"], report["fp"], report["fn"], report["tn"]) == (4, 2, 1, 3)
    assert report["precision"] == pytest.approx(4 / 6, abs=1e-4)
    assert report["recall"] == pytest.approx(0.8, abs=1e-4)
    assert report["f1"] == pytest.approx(2 * (4 / 6) * 0.8 / (4 / 6 + 0.8), abs=1e-4)
    assert report["c_det_norm"] == pytest.approx(0.2 + 4.9 * 0.4, abs=1e-4)
    en, pl = report["per_language"]["en"], report["per_language"]["pl"]
    assert en["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert en["c_det_norm"] == pytest.approx(1 / 3 + 4.9 / 3, abs=1e-4)
    assert pl["f1"] == pytest.approx(0.8, abs=1e-4)
    assert pl["c_det_norm"] == pytest.approx(4.9 * 0.5, abs=1e-4)
    assert isinstance(report["best_threshold"], float)
    assert report["at_best_threshold"]["f1"] >= report["f1"]


def test_eval_table_and_semantic_only_mode(make_config: Callable[..., Config]) -> None:
    config = make_config(topics=VOLCANO)
    table = invoke(config, "eval", str(LABELED))
    assert "mode: hybrid" in table
    assert "at best threshold" in table
    assert "0.727" in table  # overall F1 row
    semantic = json.loads(invoke(config, "eval", str(LABELED), "--no-require", "--format", "json"))
    assert semantic["mode"] == "semantic-only"
    # without the alias group, threshold -0.2 lets every item through
    assert (semantic["tp"], semantic["fp"]) == (5, 5)


def test_eval_rejects_a_file_without_labels(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "x", "text": "y"}\n', encoding="utf-8")
    with pytest.raises(MonitorError, match=r"bad\.jsonl:1"):
        invoke(make_config(topics=VOLCANO), "eval", str(bad))


def test_topics_test_prints_score_decision_and_explanation(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    out = invoke(config, "topics", "test", ON_TOPIC)
    assert "alliance: MATCH" in out
    assert "closest passage" in out
    assert "kim jong un" in out
    article = tmp_path / "article.txt"
    article.write_text("Local bakery wins bread award\nThe sourdough was the best.", "utf-8")
    out = invoke(config, "topics", "test", "--file", str(article))
    assert "alliance: no match" in out
    # each missing group is named by its first aliases, not by its index
    assert "require group missing: north korea* / pyongyang / kim jong un / …" in out
    assert "require group missing: russia* / moscow / putin* / …" in out


def test_topics_preview_counts_samples_and_histogram(make_config: Callable[..., Config]) -> None:
    config = make_config()
    rt = open_runtime(config)
    try:
        with db.session_scope(rt.sessions) as session:
            feed = Feed(url="http://127.0.0.1/f", name="f")
            session.add(feed)
            session.flush()
            now = datetime.now(UTC)
            title, summary = ON_TOPIC.split("\n")
            session.add_all(
                [
                    Article(
                        feed_id=feed.id,
                        entry_key="a",
                        title=title,
                        summary=summary,
                        published_at=now - timedelta(days=1),
                    ),
                    Article(
                        feed_id=feed.id,
                        entry_key="b",
                        title="Bakery wins award",
                        summary="Sourdough.",
                        published_at=now - timedelta(days=2),
                    ),
                    Article(
                        feed_id=feed.id,
                        entry_key="c",
                        title="Kim Jong Un meets Putin again",
                        summary="Old news.",
                        published_at=now - timedelta(days=30),
                    ),
                ]
            )
    finally:
        rt.close()
    out = invoke(config, "topics", "preview", "--since", "7d")
    assert "2 stored articles published in the last 7d" in out
    assert "topic alliance: 1 of 2 would match" in out
    assert "Kim Jong Un arrives in Russia" in out
    assert "<- threshold" in out


def test_feedback_command_records_a_judgement(make_config: Callable[..., Config]) -> None:
    config = make_config()
    rt = open_runtime(config)
    try:
        with db.session_scope(rt.sessions) as session:
            feed = Feed(url="http://127.0.0.1/f", name="f")
            session.add(feed)
            session.flush()
            title, summary = ON_TOPIC.split("\n")
            session.add(
                Article(
                    feed_id=feed.id,
                    entry_key="a",
                    title=title,
                    summary=summary,
                    published_at=datetime.now(UTC),
                )
            )
        assert stage.match_new(rt).matched == 1
        with db.session_scope(rt.sessions) as session:
            match_id = session.scalars(select(Match.id)).one()
    finally:
        rt.close()
    out = invoke(config, "feedback", str(match_id), "irrelevant")
    assert f"match {match_id}: recorded as irrelevant for topic alliance" in out
    rt = open_runtime(config)
    try:
        with db.session_scope(rt.sessions) as session:
            assert [f.relevant for f in session.scalars(select(Feedback))] == [False]
    finally:
        rt.close()
    maybe = CliRunner().invoke(app, ["--config", str(config.path), "feedback", "1", "maybe"])
    assert maybe.exit_code == 2  # a usage error, found while parsing
    assert "is not one of 'relevant', 'irrelevant'" in maybe.output
    with pytest.raises(MonitorError, match="no match with id"):
        invoke(config, "feedback", "999", "relevant")


def test_eval_warns_when_no_item_matches_any_topic(make_config: Callable[..., Config]) -> None:
    """A topic that matches nothing still yields a "best" threshold (low enough to accept
    everything); eval says so instead of recommending it silently."""
    config = make_config(
        topics='[[topics]]\nname = "nothing"\ndescriptions = ["A volcano erupts"]\n'
        'require = [["zzqxw"]]\nthreshold = 0.5\n'
    )
    result = CliRunner().invoke(
        app, ["--config", str(config.path), "eval", str(LABELED), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tp"] + report["fp"] == 0
    assert any("no item matches any topic" in w for w in report["warnings"])
    assert "warning: no item matches any topic at the configured thresholds" in result.stderr
    fine = json.loads(invoke(make_config(topics=VOLCANO), "eval", str(LABELED), "-f", "json"))
    assert fine["warnings"] == []


def test_eval_warns_when_the_best_threshold_accepts_everything() -> None:
    from monitor.cli.tuning_cmd import eval_warnings

    none_matched = {"n": 10, "tp": 0, "fp": 0}
    accept_all = {"n": 10, "tp": 5, "fp": 5}
    warnings = eval_warnings({**none_matched, "at_best_threshold": accept_all})
    assert len(warnings) == 2
    assert "accepts every item" in warnings[1]
    assert (
        eval_warnings({"n": 10, "tp": 4, "fp": 2, "at_best_threshold": {**accept_all, "fp": 1}})
        == []
    )


def test_histogram_shows_every_score_unclipped() -> None:
    """Scores far below zero (a missing require group costs 1.0) get their own bins instead of
    being folded into the lowest one; every score is counted once."""
    import numpy as np

    from monitor.cli.topics_cmd import histogram_lines

    scores = np.array([-0.93, -0.91, -0.55, 0.12, 0.47, 0.81])
    lines = histogram_lines(scores, threshold=0.4)
    assert lines[0].split()[:3] == ["[-1.0,", "-0.9)", "2"]
    assert lines[-1].split()[:3] == ["[+0.8,", "+0.9)", "1"]
    assert sum(int(line.split(")")[1].split()[0]) for line in lines) == len(scores)
    assert next(line for line in lines if "<- threshold" in line).startswith("[+0.4, +0.5)")
    assert len(lines) == 19  # every bin from -1.0 to +0.9, empty ones too


def test_topics_preview_one_topic(make_config: Callable[..., Config]) -> None:
    config = make_config(topics=TOPIC_PAIR)
    rt = open_runtime(config)
    try:
        with db.session_scope(rt.sessions) as session:
            feed = Feed(url="http://127.0.0.1/f", name="f")
            session.add(feed)
            session.flush()
            title, summary = ON_TOPIC.split("\n")
            session.add(
                Article(
                    feed_id=feed.id,
                    entry_key="a",
                    title=title,
                    summary=summary,
                    published_at=datetime.now(UTC) - timedelta(hours=1),
                )
            )
    finally:
        rt.close()
    both = invoke(config, "topics", "preview")
    assert "topic alliance:" in both
    assert "topic volcano:" in both
    one = invoke(config, "topics", "preview", "--topic", "volcano", "--since", "2d")
    assert "1 stored articles published in the last 2d" in one
    assert "topic volcano: 0 of 1 would match" in one
    assert "topic alliance" not in one
    result = CliRunner().invoke(
        app, ["--config", str(config.path), "topics", "preview", "--topic", "nope"]
    )
    assert isinstance(result.exception, MonitorError)
    assert 'no topic "nope" (configured: alliance, volcano)' in str(result.exception)


TOPIC_PAIR = (
    '[[topics]]\nname = "alliance"\ndescriptions = ["North Korea and Russia"]\n'
    'require = [["north korea*", "kim jong un"], ["russia*", "putin*"]]\nthreshold = 0.4\n'
    + VOLCANO
)
