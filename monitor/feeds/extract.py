"""An article page's body as plain text (trafilatura), and the lead that stands in for a thin
feed summary.

trafilatura drops navigation, comment sections, cookie banners and other boilerplate around
the article; we also ask it to leave tables out (on news pages they are mostly navigation or
tickers). It parses with lxml and can take tens of milliseconds on a large page, so the
full-text stage runs it in the parser worker processes, under their time limit.
"""

from __future__ import annotations

import re

MAX_BODY_CHARS = 100_000  # stored body; a longer "article" is a page of something else
MIN_BODY_CHARS = 200  # less is a menu or a placeholder that trafilatura's fallback picked up
LEAD_CHARS = 1_500  # enough for any model's max_seq_length (the tokenizer cuts the rest)
THIN_SUMMARY_CHARS = 200  # a summary shorter than this, or of one sentence, is "one line"
_SENTENCE_END = re.compile(r"[.!?。！？…](?:[\"'»”)\]]*)(?:\s|$)")


def extract_article(html: str, url: str) -> str | None:
    """The article text of an HTML page (one paragraph a line), or None when the page holds no
    article text (less than :data:`MIN_BODY_CHARS`)."""
    import trafilatura  # imported where it runs (worker processes), not in the daemon

    text = trafilatura.extract(
        html,
        url=url or None,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        favor_precision=True,
        deduplicate=True,
    )
    if not text or len(text.strip()) < MIN_BODY_CHARS:
        return None
    return text.strip()[:MAX_BODY_CHARS]


def is_thin(summary: str) -> bool:
    """Whether a feed summary is "a single line": short, or at most one sentence.

    Such a summary (a teaser, the title again, "Read more…") says too little to embed, so the
    lead of the article's body is embedded and shown instead.
    """
    summary = summary.strip()
    if len(summary) < THIN_SUMMARY_CHARS:
        return True
    return len(_SENTENCE_END.findall(summary)) <= 1


def body_lead(title: str, summary: str, body: str) -> str:
    """What replaces ``summary`` for embedding and display: the body's first paragraphs (its
    headline dropped when it repeats ``title``), up to :data:`LEAD_CHARS` and cut at a sentence
    end; ``""`` when the summary is enough or the body says no more than it."""
    if not is_thin(summary):
        return ""
    paragraphs = [" ".join(p.split()) for p in body.splitlines() if p.strip()]
    if paragraphs and paragraphs[0].casefold() == " ".join(title.split()).casefold():
        paragraphs = paragraphs[1:]
    text = " ".join(paragraphs)
    if len(text) <= len(summary.strip()):
        return ""
    if len(text) <= LEAD_CHARS:
        return text
    cut = text[:LEAD_CHARS]
    ends = [m.end() for m in _SENTENCE_END.finditer(cut)]
    return cut[: ends[-1]].strip() if ends else cut
