"""Signed judgement links and feed tokens (monitor/signing.py): one match, one verdict, one
expiry per link; no key without api.token; feed tokens differ per topic and per key."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from monitor import signing

KEY = signing.server_key("a-token")
NOW = 1_800_000_000.0


def parts(url: str) -> tuple[str, str, str]:
    query = parse_qs(urlsplit(url).query)
    return urlsplit(url).path, query["expires"][0], query["sig"][0]


def test_no_token_means_no_key_and_every_link_is_refused() -> None:
    assert signing.server_key("") is None
    assert "api.token" in signing.judgement_refusal(None, 1, "relevant", "9999999999", "x")


def test_a_link_checks_out_until_it_expires() -> None:
    assert KEY is not None
    url = signing.judgement_url("https://m.example/", KEY, 42, "irrelevant", now=NOW)
    path, expires, sig = parts(url)
    assert url.startswith("https://m.example/judge/42/irrelevant?")
    assert path == "/judge/42/irrelevant"
    assert signing.judgement_refusal(KEY, 42, "irrelevant", expires, sig, now=NOW) == ""
    late = NOW + signing.LINK_TTL_S + 1
    assert "expired" in signing.judgement_refusal(KEY, 42, "irrelevant", expires, sig, now=late)


@pytest.mark.parametrize(
    ("match_id", "verdict", "expires_delta", "sig_suffix"),
    [
        (43, "irrelevant", 0, ""),
        (42, "relevant", 0, ""),
        (42, "irrelevant", 60, ""),
        (42, "irrelevant", 0, "0"),
    ],
)
def test_any_change_breaks_the_signature(match_id, verdict, expires_delta, sig_suffix) -> None:
    assert KEY is not None
    _path, expires, sig = parts(signing.judgement_url("https://m", KEY, 42, "irrelevant", NOW))
    refusal = signing.judgement_refusal(
        KEY, match_id, verdict, str(int(expires) + expires_delta), sig + sig_suffix, now=NOW
    )
    assert "signature is wrong" in refusal


def test_odd_inputs_are_refused_not_raised() -> None:
    assert KEY is not None
    assert signing.judgement_refusal(KEY, 1, "maybe", "1", "x")
    assert signing.judgement_refusal(KEY, 1, "relevant", "-5", "x")
    assert signing.judgement_refusal(KEY, 1, "relevant", "9" * 40, "x")
    with pytest.raises(ValueError, match="verdict"):
        signing.judgement_path(KEY, 1, "maybe")


def test_feed_tokens_differ_by_topic_and_key() -> None:
    assert KEY is not None
    other = signing.server_key("another-token")
    assert other is not None
    token = signing.feed_token(KEY, "alliance")
    assert signing.feed_token_ok(KEY, "alliance", token)
    assert not signing.feed_token_ok(KEY, "sanctions", token)
    assert not signing.feed_token_ok(other, "alliance", token)
    assert (
        signing.feed_path(KEY, "a b")
        == f"/topics/a%20b/feed.xml?token={signing.feed_token(KEY, 'a b')}"
    )
    assert signing.feed_path(None, "a b") == "/topics/a%20b/feed.xml"
