"""The matches page and the match page through TestClient: every filter narrows the list the
way /api/matches does, pages follow the keyset cursor, the filter lives in the URL, feed text
is escaped, and a judgement is one POST."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select, update

from monitor.store import db, read_models
from monitor.store.models import Article, Feedback, Match
from tests.query.data import HOSTILE_TITLE, NOW

ITEM = re.compile(r'<li id="m(\d+)" class="match">')
SCORE = re.compile(r'<span class="score"[^>]*>([0-9.]+)</span>')
NEXT = re.compile(r'rel="next" href="([^"]+)"')


def ids(html: str) -> list[int]:
    return [int(x) for x in ITEM.findall(html)]


def every_page(client, url: str) -> list[int]:
    seen, pages = [], 0
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        seen += ids(answer.text)
        found = NEXT.search(answer.text)
        url = unescape(found.group(1)) if found else ""
        pages += 1
        assert pages < 50
    return seen


def api_ids(client, **params) -> list[int]:
    items = client.get("/api/matches", params={"limit": 500, **params}).json()["items"]
    return [i["match_id"] for i in items]


@pytest.mark.parametrize(
    "params",
    [
        {"topic": "alliance"},
        {"topic": "sanctions"},
        {"lang": "id"},
        {"min_score": "0.45"},
        {"topic": "alliance", "lang": "en", "min_score": "0.42"},
    ],
)
def test_filters_agree_with_the_api(open_client, params) -> None:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    assert ids(open_client.get(f"/matches?{query}&limit=100").text) == api_ids(
        open_client, **params
    )


def test_feed_and_date_filters(open_client, env) -> None:
    world = env.seeded.feeds["World Desk"]
    page = ids(open_client.get(f"/matches?feed={world}&limit=100").text)
    assert page == api_ids(open_client, feed=str(world))
    assert 0 < len(page) < 15
    # "to" a date includes that whole day; the 246-hour-old sanctions match is before it
    with db.session_scope(env.runtime.sessions) as s:
        oldest = s.scalars(select(Match).order_by(Match.published_at)).first()
        day = oldest.published_at.date().isoformat()
    assert ids(open_client.get(f"/matches?until={day}&limit=100").text) == [oldest.id]
    assert oldest.id not in ids(open_client.get(f"/matches?since={day}T23:59:59&limit=100").text)


def test_alerted_and_judged_filters(open_client, env) -> None:
    history, judged = env.seeded.matches[2], env.seeded.matches[3]
    with db.session_scope(env.runtime.sessions) as s:
        s.execute(update(Match).where(Match.id == history).values(alerted=False))
        read_models.record_feedback(s, judged, False)
    assert ids(open_client.get("/matches?alerted=history").text) == [history]
    assert history not in ids(open_client.get("/matches?alerted=alerted&limit=100").text)
    assert ids(open_client.get("/matches?judged=judged").text) == [judged]
    unjudged = ids(open_client.get("/matches?judged=unjudged&limit=100").text)
    assert judged not in unjudged
    assert len(unjudged) == 14


def test_sort_by_score_pages_through_every_match_once(open_client) -> None:
    by_score = every_page(open_client, "/matches?sort=score&limit=25")
    assert len(by_score) == len(set(by_score)) == 15
    html = open_client.get("/matches?sort=score&limit=100").text
    scores = [float(x) for x in SCORE.findall(html)]
    assert scores == sorted(scores, reverse=True)
    assert by_score == api_ids(open_client, sort="score")


def test_keyset_pages_by_time_keep_the_filter_in_the_url(open_client, env) -> None:
    alliance = env.seeded.topics["alliance"]
    with db.session_scope(env.runtime.sessions) as s:  # 40 more: three pages of 25
        for i in range(40):
            a = Article(
                feed_id=env.seeded.feeds["World Desk"],
                entry_key=f"more{i}",
                title=f"More troops {i}",
                language="en",
                published_at=NOW - timedelta(minutes=7 * i),
            )
            s.add(a)
            s.flush()
            s.add(Match(article_id=a.id, topic_id=alliance, score=0.5, published_at=a.published_at))
    assert every_page(open_client, "/matches?limit=25") == api_ids(open_client)
    assert len(every_page(open_client, "/matches?topic=alliance&lang=en&limit=25")) == 47
    first = open_client.get("/matches?topic=alliance&lang=en&limit=25").text
    link = unescape(NEXT.search(first).group(1))
    for part in ("topic=alliance", "lang=en", "cursor="):
        assert part in link
    assert 'value="alliance" selected' in first
    assert "First page" in open_client.get(link).text


def test_bad_values_answer_400_with_the_field_named(open_client) -> None:
    answer = open_client.get("/matches?min_score=lots")
    assert answer.status_code == 400
    assert "min score" in answer.text
    assert "since" in open_client.get("/matches?since=yesterday-ish").text
    assert open_client.get("/matches?cursor=nonsense").status_code == 400
    assert "no topic" in open_client.get("/matches?topic=nope").text


def test_feed_text_is_escaped_on_every_page(open_client, env) -> None:
    hostile = env.seeded.hostile_match
    for path in ("/matches", f"/matches/{hostile}", "/topics/alliance"):
        html = open_client.get(path).text
        assert "<script>window.__pwned" not in html
    page = open_client.get(f"/matches/{hostile}").text
    assert "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert "&lt;b&gt;bold&lt;/b&gt; passage" in page
    assert HOSTILE_TITLE not in page


def test_match_page_shows_story_explanation_and_judgements(open_client, env) -> None:
    first = env.seeded.matches[0]
    with db.session_scope(env.runtime.sessions) as s:
        other = s.get(Match, env.seeded.matches[1])
        other.story_id = env.seeded.story
    page = open_client.get(f"/matches/{first}").text
    assert "Seed passage 0 about troops" in page
    assert "north korean" in page  # aliases found
    assert "SMTP 451 try later" in page  # a delivery's error
    assert f'href="/matches/{env.seeded.matches[1]}"' in page  # the story's other article
    assert "Not judged yet" in page
    answer = open_client.post(
        f"/matches/{first}/judge", data={"relevant": "1"}, follow_redirects=False
    )
    assert answer.headers["location"] == f"/matches/{first}"
    page = open_client.get(f"/matches/{first}").text
    assert "alliance: <strong>relevant</strong>" in page
    open_client.post(f"/matches/{first}/judge", data={"relevant": "0"})
    history = open_client.get(f"/matches/{first}").text.split('class="plain judgements"')[1]
    history = history.split("</ul>")[0]
    # both judgements, newest first: the history, not only the latest
    assert history.index("not relevant") < history.index("<strong>relevant</strong>")
    assert open_client.get("/matches/999999").status_code == 404


def test_judgement_returns_to_the_list_but_never_to_another_site(open_client, env) -> None:
    target = env.seeded.matches[4]
    back = open_client.post(
        f"/matches/{target}/judge",
        data={"relevant": "0", "next": f"/matches?topic=alliance#m{target}"},
        follow_redirects=False,
    )
    assert back.headers["location"] == f"/matches?topic=alliance#m{target}"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = open_client.post(
            f"/matches/{target}/judge", data={"relevant": "0", "next": evil}, follow_redirects=False
        )
        assert answer.headers["location"] == f"/matches/{target}"
    with db.session_scope(env.runtime.sessions) as s:
        assert s.scalar(select(Feedback.relevant).where(Feedback.match_id == target)) is False


def test_a_cross_site_judgement_is_refused(open_client, env) -> None:
    answer = open_client.post(
        f"/matches/{env.seeded.matches[0]}/judge",
        data={"relevant": "1"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    with db.session_scope(env.runtime.sessions) as s:
        assert s.scalars(select(Feedback)).all() == []
