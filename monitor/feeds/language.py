"""Which language an article is in: what its feed declares, else what its text says.

Precedence, first that applies (``parse.parse_feed`` applies 1-3, the polling stage 4):

1. the entry's own declaration (``xml:lang`` on the entry or its content, ``dc:language``),
   where it differs from the feed's: the publisher said so for this entry;
2. the feed's declaration (``<language>``, ``xml:lang`` on the feed), when it names exactly one
   language and the feed's ``language`` in config is not ``"auto"``; entries without their own
   ``xml:lang`` inherit the feed's, as in XML;
3. the feed's ``language`` from config (or the one learnt from its earlier polls), unless it is
   ``"auto"``;
4. detection from the title and summary with py3langid; ``""`` (unknown) when the text is too
   short or the detector unsure.

So entries of a feed that declares no language, or several at once (``"en, id"``), or only
per entry (``xml:lang`` on some entries, none on the feed) are detected one by one, and
``--lang`` filters hold for mixed feeds. ``language = "auto"`` is for feeds that declare one
language but carry several (a CMS default such as ``en-US`` on an Indonesian site).

Cost: the model takes about 0.9 s to load and about 90 MB resident, so it is loaded once, in the
daemon process, on first need; detection runs only on entries about to be stored (not on every
re-parse of a feed) and takes well under a millisecond per entry (``tests/feeds/
test_language.py`` prints the figure on a fixture).
"""

from __future__ import annotations

import re
import threading
from typing import Any

AUTO = "auto"  # feeds.language = "auto": detect every entry not declared by itself
MIN_CONFIDENCE = 0.4  # calibrated probability below which the answer is "unknown"
MIN_LETTERS = 12  # fewer letters than this (a name, a number) says nothing about a language
MAX_CHARS = 1000  # the lead is enough; the detector's cost grows with the text
_SEPARATORS = re.compile(r"[\s,;/|]+")
_CODE = re.compile(r"^[a-z]{2,3}$")

_lock = threading.Lock()
_identifier: Any = None


def declared_language(value: object) -> tuple[str, bool]:
    """A declared language tag -> (primary code, ambiguous).

    ``"en-US"`` -> ``("en", False)``; ``"en, id"`` -> ``("", True)`` (several languages);
    ``""`` or a value that is no language tag -> ``("", False)``.
    """
    if not isinstance(value, str) or not value.strip():
        return "", False
    codes = {
        part.replace("_", "-").split("-")[0].lower()
        for part in _SEPARATORS.split(value.strip())
        if part
    }
    codes = {code for code in codes if _CODE.match(code)}
    if len(codes) > 1:
        return "", True
    return (codes.pop() if codes else ""), False


def _model() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``, or ``""`` when it is too short or the detector unsure."""
    text = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return ""
    code, confidence = _model().classify(text)
    return str(code) if confidence >= MIN_CONFIDENCE else ""
