"""How many alerts does story grouping save? Replays a JSONL stream through the real outbox.

Each entry (fields: feed, link, title, summary, published) becomes an Article + Match of one
topic in a temporary SQLite database, in publication order, and goes through the production
``monitor.pipeline.outbox.enqueue_alerts`` with the ``--model`` embedding (passage side, as
stored) of ``title. summary`` and a clock set to the entry's publication time. Alerts = deliveries written;
saved = matches that joined an existing story instead of alerting.

With ``--labels`` (a JSON file with a "positive" list of links) only labelled-positive entries
are replayed, i.e. what a perfect matcher would alert on. Usage::

    python bench/story_savings.py /work/shared/stream/2023-09.jsonl.gz \
        --labels /work/shared/stream/2023-09.labels.json --similarity 0.8 0.85 0.9
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sqlalchemy import func, select

from monitor.clock import Clock
from monitor.config import PACKAGED_E5_MODEL, ModelConfig, parse_config
from monitor.embed import PASSAGE, article_text, load_embedder
from monitor.pipeline.outbox import enqueue_alerts
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from monitor.store.models import Article, Delivery, Embedding, Feed, Match, Topic


def canonical(link: str) -> str:
    """A rough canonical link: lower-case host, no fragment, no tracking parameters."""
    parts = urlsplit(link.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query)
        if not k.lower().startswith("utm_") and k.lower() not in ("source", "ref", "cmp")
    ]
    host = parts.netloc.lower()
    return urlunsplit((parts.scheme.lower(), host, parts.path, urlencode(query), ""))


def load_entries(path: Path, positives: set[str] | None) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    seen: set[tuple[str, str]] = set()
    entries = []
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for line in handle:
            entry = json.loads(line)
            if positives is not None and entry.get("link") not in positives:
                continue
            key = (entry.get("feed", ""), entry.get("link", ""))
            if key in seen:
                continue
            seen.add(key)
            entries.append(entry)
    entries.sort(key=lambda e: e.get("published") or "")
    return entries


def published(entry: dict[str, Any]) -> datetime:
    value = datetime.fromisoformat(entry["published"])
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def embed(entries: list[dict[str, Any]], model: str) -> list[list[float]]:
    """Vectors as the matching stage stores them (passage side, title + lead, 128 tokens)."""
    embedder = load_embedder(ModelConfig(name=model))
    texts = [article_text(e.get("title", ""), e.get("summary", "")) for e in entries]
    vectors = embedder.encode(texts, kind=PASSAGE)
    return [list(map(float, v)) for v in vectors]


def replay(
    entries: list[dict[str, Any]],
    vectors: list[list[float]],
    similarity: float,
    window: str,
    show: int = 0,
    across: float | None = None,
) -> tuple[int, int, int]:
    """Run the entries through enqueue_alerts; return (matches, alerts, saved matches whose
    story holds an article in another language)."""
    with tempfile.TemporaryDirectory() as tmp:
        text = (
            f'[database]\nurl = "sqlite:///{tmp}/bench.db"\n[delivery]\n'
            f'story_similarity = {similarity}\nstory_window = "{window}"\n'
            f"story_similarity_across_languages = {similarity if across is None else across}\n"
            '[[topics]]\nname = "bench"\ndescriptions = ["x"]\nchannels = ["console"]\n'
        )
        runtime = open_runtime(parse_config(text, Path(tmp) / "config.toml"))
        now = {"t": datetime.now(UTC)}
        runtime.resources.clock = Clock(lambda: now["t"])
        feeds: dict[str, int] = {}
        try:
            for index, (entry, vector) in enumerate(zip(entries, vectors, strict=True)):
                now["t"] = published(entry)
                with db.session_scope(runtime.sessions) as session:
                    feed_url = entry.get("feed") or "unknown"
                    if feed_url not in feeds:
                        feed = Feed(url=feed_url, name=entry.get("feed_title", ""))
                        session.add(feed)
                        session.flush()
                        feeds[feed_url] = feed.id
                    topic_id = session.scalar(select(Topic.id).where(Topic.name == "bench"))
                    article = Article(
                        feed_id=feeds[feed_url],
                        entry_key=f"e{index}",
                        link=entry.get("link", ""),
                        canonical_link=canonical(entry.get("link", "")),
                        title=entry.get("title", ""),
                        language=entry.get("lang", ""),
                        published_at=now["t"],
                    )
                    session.add(article)
                    session.flush()
                    # as the matching stage does: the article's vector is stored before matching
                    raw = np.asarray(vector, dtype=np.float32)
                    session.add(
                        Embedding(
                            article_id=article.id,
                            model_id="bench",
                            dim=len(raw),
                            vector=raw.tobytes(),
                        )
                    )
                    match = Match(
                        article_id=article.id, topic_id=topic_id, score=1.0, published_at=now["t"]
                    )
                    session.add(match)
                    session.flush()
                    enqueue_alerts(session, runtime, match, article, vector)
            with db.session_scope(runtime.sessions) as session:
                matches = session.scalar(select(func.count()).select_from(Match)) or 0
                alerts = session.scalar(select(func.count()).select_from(Delivery)) or 0
                across = saved_across_languages(session)
                if show:
                    print_groups(session, show)
        finally:
            runtime.close()
    return matches, alerts, across


def saved_across_languages(session: Any) -> int:
    """Matches that joined a story (no alert) holding an article in another language."""
    rows = session.execute(
        select(Match.story_id, Match.alerted, Article.language).join(
            Article, Article.id == Match.article_id
        )
    ).all()
    languages: dict[int, set[str]] = {}
    for story_id, _, language in rows:
        if story_id is not None:
            languages.setdefault(story_id, set()).add(language or "?")
    return sum(
        1
        for story_id, alerted, language in rows
        if story_id is not None and not alerted and languages[story_id] - {language or "?"}
    )


def print_groups(session: Any, show: int) -> None:
    """The largest stories, to judge by eye whether grouped articles report one event."""
    sizes = session.execute(
        select(Match.story_id, func.count())
        .group_by(Match.story_id)
        .having(func.count() > 1)
        .order_by(func.count().desc())
        .limit(show)
    ).all()
    for story_id, size in sizes:
        titles = session.scalars(
            select(Article.title)
            .join(Match, Match.article_id == Article.id)
            .where(Match.story_id == story_id)
            .order_by(Match.id)
        ).all()
        print(f"  story {story_id} ({size} articles):")
        for title in titles[:6]:
            print(f"    - {title[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stream", type=Path, help="JSONL (optionally .gz) of entries")
    parser.add_argument("--labels", type=Path, help='JSON with a "positive" list of links')
    parser.add_argument("--similarity", type=float, nargs="+", default=[0.9])
    parser.add_argument(
        "--across",
        type=float,
        nargs="+",
        default=[None],
        help="story_similarity_across_languages values (default: the same as --similarity)",
    )
    parser.add_argument("--window", default="48h", help="story window, e.g. 48h")
    parser.add_argument("--model", default=PACKAGED_E5_MODEL, help="model.name to embed with")
    parser.add_argument(
        "--show-groups", type=int, default=0, help="print the N largest stories of each run"
    )
    args = parser.parse_args()
    positives = None
    if args.labels:
        positives = set(json.loads(args.labels.read_text(encoding="utf-8"))["positive"])
    entries = load_entries(args.stream, positives)
    print(
        f"entries replayed: {len(entries)}"
        + (f" (labelled positive; {len(positives)} positive links)" if positives else "")
    )
    vectors = embed(entries, args.model)
    print(f"model: {args.model}")
    for similarity in args.similarity:
        for across_threshold in args.across:
            matches, alerts, across = replay(
                entries, vectors, similarity, args.window, args.show_groups, across_threshold
            )
            saved = matches - alerts
            label = "" if across_threshold is None else f" across languages>={across_threshold:.2f}"
            print(
                f"similarity>={similarity:.2f}{label} window={args.window}: {matches} matches -> "
                f"{alerts} alerts, {saved} saved ({100 * saved / max(1, matches):.0f}%), "
                f"{across} of them joined a story in another language"
            )


if __name__ == "__main__":
    main()
