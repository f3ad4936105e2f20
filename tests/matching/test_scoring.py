"""Hybrid scoring with the real packaged model: meaning, aliases, negatives, explanations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from monitor import scoring
from monitor.config import Config
from monitor.domain import Explanation
from monitor.embed import PASSAGE, SentenceTransformerEmbedder, article_text, exemplar_encoder

ON_TOPIC = (
    "Kim Jong Un arrives in Russia for talks with Putin",
    "North Korea's leader met Vladimir Putin to discuss sending artillery shells to Moscow.",
)
NK_ONLY = (
    "North Korea launches a ballistic missile into the sea",
    "Pyongyang fired the missile early on Tuesday, South Korea's military said.",
)
OFF_TOPIC = ("Local bakery wins bread award", "The bakery's sourdough was judged the best in town.")


def _topic(config: Config, embedder: SentenceTransformerEmbedder) -> scoring.TopicModel:
    return scoring.build_topic(
        config.topics[0], exemplar_encoder(embedder), base_dir=config.base_dir
    )


def _score(
    topic: scoring.TopicModel,
    embedder: SentenceTransformerEmbedder,
    item: tuple[str, str],
    params: scoring.ScoringParams = scoring.DEFAULT_PARAMS,
) -> scoring.Verdict:
    vector = embedder.encode([article_text(*item)], kind=PASSAGE)[0]
    return scoring.score_one(topic, f"{item[0]}\n{item[1]}", vector, params)


def test_exemplars_come_from_seed_passages_descriptions_and_whole_article(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(), embedder)
    sources = {e.source for e in topic.positives}
    assert {"seed:alliance.txt", "seed-article:alliance.txt", "description"} <= sources
    assert topic.positive_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(topic.positive_vectors, axis=1), 1.0, atol=1e-4)


def test_on_topic_article_matches_with_explanation(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(), embedder)
    verdict = _score(topic, embedder, ON_TOPIC)
    assert verdict.matched
    expl = verdict.explanation
    assert expl.score == round(verdict.score, 4)
    assert expl.score == round(expl.semantic + scoring.DEFAULT_PARAMS.lexical_bonus, 4)
    assert expl.passage
    assert expl.passage_source
    assert {"kim jong un", "russia*"} <= set(expl.aliases)
    assert expl.missing_groups == ()


def test_missing_require_group_blocks_a_semantically_close_article(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(), embedder)
    verdict = _score(topic, embedder, NK_ONLY)
    assert not verdict.matched
    russia = ("russia*", "moscow", "putin*", "rusia", "rosj*", "러시아*", "росси*")
    assert verdict.explanation.missing_groups == (russia,)  # named by its aliases
    semantic_only = _score(topic, embedder, NK_ONLY, scoring.ScoringParams(use_require=False))
    assert semantic_only.score > verdict.score
    assert semantic_only.explanation.aliases == ()


def test_meaning_ranks_on_topic_above_off_topic(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(), embedder)
    params = scoring.ScoringParams(use_require=False)
    on = _score(topic, embedder, ON_TOPIC, params)
    off = _score(topic, embedder, OFF_TOPIC, params)
    assert on.explanation.semantic > off.explanation.semantic + 0.3


def test_exclude_alias_vetoes(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topics = """
[[topics]]
name = "alliance"
seed = ["seeds/alliance.txt"]
require = [["north korea*", "kim jong un"], ["russia*", "putin"]]
exclude = ["opinion"]
threshold = 0.3
"""
    topic = _topic(make_config(topics=topics), embedder)
    vetoed = _score(topic, embedder, (f"Opinion: {ON_TOPIC[0]}", ON_TOPIC[1]))
    assert not vetoed.matched
    assert vetoed.explanation.excluded_by == "opinion"


def test_negative_examples_pull_the_score_down(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    plain = _topic(make_config(), embedder)
    topics = """
[[topics]]
name = "alliance"
seed = ["seeds/alliance.txt"]
negative_examples = ["North Korea fires a ballistic missile into the sea near Japan"]
threshold = 0.4
"""
    with_negative = _topic(make_config(topics=topics), embedder)
    params = scoring.ScoringParams(use_require=False)
    before = _score(plain, embedder, NK_ONLY, params)
    after = _score(with_negative, embedder, NK_ONLY, params)
    assert after.score < before.score - 0.1
    assert any("negative" in note for note in after.explanation.notes)


def test_feedback_exemplars_change_scores(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    config = make_config()
    vector = embedder.encode([article_text(*NK_ONLY)], kind=PASSAGE)[0]
    params = scoring.ScoringParams(use_require=False)
    base = scoring.build_topic(
        config.topics[0], exemplar_encoder(embedder), base_dir=config.base_dir
    )
    liked = scoring.build_topic(
        config.topics[0],
        exemplar_encoder(embedder),
        base_dir=config.base_dir,
        feedback=[scoring.FeedbackExample(NK_ONLY[0], vector, True)],
    )
    disliked = scoring.build_topic(
        config.topics[0],
        exemplar_encoder(embedder),
        base_dir=config.base_dir,
        feedback=[scoring.FeedbackExample(NK_ONLY[0], vector, False)],
    )
    text = "\n".join(NK_ONLY)
    s_base = scoring.score_one(base, text, vector, params).score
    s_liked = scoring.score_one(liked, text, vector, params)
    s_disliked = scoring.score_one(disliked, text, vector, params).score
    assert s_liked.score > s_base
    assert s_liked.explanation.passage_source == "feedback:relevant"
    assert s_disliked < s_base


def test_embedder_returns_unit_float32_vectors_and_truncates(
    embedder: SentenceTransformerEmbedder,
) -> None:
    vectors = embedder.encode(["one text", "another text"], kind=PASSAGE)
    assert vectors.shape == (2, embedder.dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    long = article_text("Title", "word " * 5000, max_seq_length=128)
    assert len(long) <= 128 * 8
    # beyond max_seq_length tokens nothing changes the vector
    a = embedder.encode([long], kind=PASSAGE)[0]
    b = embedder.encode([long + " completely different ending about cooking"], kind=PASSAGE)[0]
    assert np.allclose(a, b, atol=1e-5)
    assert embedder.model_id == "packaged:all-MiniLM-L6-v2@128"


# Written for this test (Indonesian): North Korea sends troops to Russia, no word on sanctions.
TROOPS_ID = (
    "Korea Utara mengirim ribuan tentara ke Rusia",
    "Pyongyang dilaporkan memberangkatkan ribuan tentara untuk membantu Moskow di garis depan, "
    "kata pejabat intelijen.",
)
SANCTIONS_TOPIC = """
[[topics]]
name = "nk-sanctions"
descriptions = [
  "North Korea breaks UN sanctions by arming Russia",
  "Korea Utara mengirim pasukan ke Rusia melanggar sanksi PBB",
]
require = [["korea utara", "north korea*", "pyongyang"], ["sanksi", "sanction*", "embargo"]]
threshold = 0.2
"""


def test_a_missing_require_group_is_a_veto_however_close_the_meaning(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(topics=SANCTIONS_TOPIC), embedder)
    verdict = _score(topic, embedder, TROOPS_ID)
    # close in meaning (well above the threshold even after a share of a penalty) ...
    assert verdict.explanation.semantic - 0.5 >= topic.threshold
    # ... but the sanctions group has no alias in the text: no match, and it says which group
    assert not verdict.matched
    assert verdict.score < topic.threshold - 1.0
    assert verdict.explanation.missing_groups == (("sanksi", "sanction*", "embargo"),)
    assert "korea utara" in verdict.explanation.aliases
    assert "require group missing: sanksi / sanction* / embargo" in verdict.explanation.notes
    with_sanctions = (TROOPS_ID[0] + " meski ada sanksi", TROOPS_ID[1])
    assert _score(topic, embedder, with_sanctions).matched


def test_the_veto_is_off_in_semantic_only_mode(
    make_config: Callable[..., Config], embedder: SentenceTransformerEmbedder
) -> None:
    topic = _topic(make_config(topics=SANCTIONS_TOPIC), embedder)
    verdict = _score(topic, embedder, TROOPS_ID, scoring.ScoringParams(use_require=False))
    assert verdict.matched
    assert verdict.explanation.missing_groups == ()


def test_explanation_dict_lists_missing_groups_by_alias() -> None:
    explanation = Explanation(score=-1.2, semantic=0.8, missing_groups=(("a", "b"),))
    assert scoring.explanation_dict(explanation)["missing_groups"] == [["a", "b"]]
    assert scoring.group_label(("a", "b", "c", "d")) == "a / b / c / …"
    assert scoring.group_label(("a", "b")) == "a / b"
