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
    with pytest.raises(MonitorError, match="relevant"):
        invoke(config, "feedback", str(match_id), "maybe")
    with pytest.raises(MonitorError, match="no match with id"):
        invoke(config, "feedback", "999", "relevant")
