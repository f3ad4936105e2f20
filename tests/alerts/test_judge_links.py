"""A judgement made from an email link, end to end: the real model matches an article, the
alert goes out through a real SMTP server (aiosmtpd), the "Not relevant" link is read out of the
received email, opened (GET: a confirmation page, nothing recorded) and confirmed (POST) against
the API served by uvicorn on loopback; the feedback is recorded and the topic scores a similar
article lower from then on. A tampered, re-purposed or expired link is refused."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor import scoring, signing
from monitor.api import create_app
from monitor.config import load_config
from monitor.embed import article_text
from monitor.pipeline import matching as stage
from monitor.pipeline.delivery import dispatch_due
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from monitor.store.models import Article, Feed, Feedback
from tests.alerts.conftest import SmtpServer, free_port
from tests.support.appserver import serve

pytestmark = pytest.mark.slow

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "matching" / "alliance-seed.en.txt"
TOKEN = "judge-links-test-token"
ARTICLE = (
    "Kim Jong Un arrives in Russia for talks with Putin",
    "North Korea's leader met Vladimir Putin to discuss sending artillery shells to Moscow.",
)
SIMILAR = (
    "Kim Jong Un travels to Russia to meet Putin",
    "North Korea's leader and Vladimir Putin talked about artillery shells for Moscow.",
)
CONFIG = """
[database]
url = "sqlite:///{tmp}/monitor.db"

[api]
token = "{token}"
public_url = "http://127.0.0.1:{api_port}"

[alerts.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_security = "plain"
sender = "monitor@example.org"
recipients = ["desk@example.org"]
timeout = "3s"

[[topics]]
name = "alliance"
seed = ["seeds/alliance.txt"]
descriptions = ["North Korea sends weapons to Russia; Kim Jong Un meets Putin"]
require = [["north korea*", "kim jong un"], ["russia*", "moscow", "putin*"]]
threshold = 0.4
channels = ["mail"]
"""


@pytest.fixture
def runtime(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Runtime]:
    (tmp_path / "seeds").mkdir()
    shutil.copy(SEED, tmp_path / "seeds" / "alliance.txt")
    path = tmp_path / "config.toml"
    text = CONFIG.format(
        tmp=tmp_path, token=TOKEN, api_port=free_port(), smtp_port=smtp_server.port
    )
    path.write_text(text, encoding="utf-8")
    rt = open_runtime(load_config(path))
    yield rt
    rt.close()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[str]:
    """The API on the port ``api.public_url`` names, served by uvicorn in a thread."""
    public = runtime.config.api.public_url
    port = int(public.rsplit(":", 1)[1])
    with serve(create_app(runtime), port=port):
        yield public


def add_live_article(runtime: Runtime, title: str, summary: str) -> int:
    with db.session_scope(runtime.sessions) as session:
        feed = Feed(url="http://127.0.0.1/feed.xml", name="Wire")
        session.add(feed)
        session.flush()
        article = Article(
            feed_id=feed.id,
            entry_key=title,
            link="https://news.example/kim-putin",
            title=title,
            summary=summary,
            published_at=datetime.now(UTC),
            is_history=False,
        )
        session.add(article)
        session.flush()
        return article.id


def next_score(runtime: Runtime, title: str, summary: str) -> float:
    """What the matching stage would score this article now (topic rebuilt from feedback)."""
    embedder = stage.get_embedder(runtime)
    with db.session_scope(runtime.sessions) as session:
        [(_topic, model)] = stage.topic_models(runtime, session)
    vector = embedder.encode([article_text(title, summary)], kind="passage")[0]
    return scoring.score_one(model, f"{title}\n{summary}", vector).score


def judgements(session_factory: object) -> list[bool]:
    with db.session_scope(session_factory) as session:  # type: ignore[arg-type]
        return list(session.scalars(select(Feedback.relevant)))


def test_a_judgement_from_an_email_link_is_recorded_and_changes_the_next_score(
    runtime: Runtime, smtp_server: SmtpServer, api: str
) -> None:
    add_live_article(runtime, *ARTICLE)
    assert stage.match_new(runtime).alerted == 1
    assert dispatch_due(runtime).sent == 1
    [mail] = smtp_server.handler.messages
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    link = re.search(r"^Not relevant: (\S+)$", text, re.MULTILINE)
    assert link, text
    url = link.group(1)
    assert url.startswith(f"{api}/judge/")
    before = next_score(runtime, *SIMILAR)

    with httpx.Client(timeout=10) as client:
        page = client.get(url)  # what a link previewer or the reader's click does
        assert page.status_code == 200
        assert "Mark as not relevant" in page.text
        assert judgements(runtime.sessions) == []  # a GET judges nothing
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        done = client.post(url, data=form)  # the form posts back to the page's own URL
    assert done.status_code == 200
    assert "Recorded" in done.text
    assert judgements(runtime.sessions) == [False]
    after = next_score(runtime, *SIMILAR)
    assert after < before - 0.05, (before, after)


def test_tampered_repurposed_or_expired_links_are_refused(
    runtime: Runtime, smtp_server: SmtpServer, api: str
) -> None:
    add_live_article(runtime, *ARTICLE)
    stage.match_new(runtime)
    dispatch_due(runtime)
    mail = smtp_server.handler.messages[0]
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    good = re.search(r"^Relevant: (\S+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
    match_id = int(good.split("/judge/")[1].split("/")[0])
    key = signing.server_key(TOKEN)
    assert key is not None
    expired = signing.judgement_url(
        api, key, match_id, "relevant", now=time.time() - signing.LINK_TTL_S - 5
    )
    bad = {
        "tampered signature": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "other verdict": good.replace("/relevant?", "/irrelevant?"),
        "other match": good.replace(f"/judge/{match_id}/", f"/judge/{match_id + 1}/"),
        "later expiry": re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 1}", good),
        "expired": expired,
        "no signature": good.split("?")[0],
    }
    with httpx.Client(timeout=10) as client:
        for why, url in bad.items():
            assert client.get(url).status_code == 403, why
            refused = client.post(url, data={})
            assert refused.status_code == 403, why
        assert "expired" in client.post(expired).text
        assert judgements(runtime.sessions) == []
        assert client.post(good).status_code == 200  # the genuine link still works
    assert judgements(runtime.sessions) == [True]
