"""Suggested ``require`` alias groups: the seed's names and how stored articles spell them.

``monitor topics suggest NAME`` prints groups for the user to edit and paste; nothing here
writes the config. There is no list of names anywhere: every alias comes from the seed or from
stored articles, by five steps that each have a reason a user can check.

1. **Names.** A name is a run of up to four capitalised words (*Kim Jong Un*, *Korea Utara*,
   *Korei Północnej*) or an acronym (*DPRK*, *KRLD*). A capitalised word is part of a name only
   if, across the seed and the stored articles, it is capitalised in at least
   ``NAME_WORD_CAPITALISED`` of its occurrences that do not start a sentence: *The*,
   *Meanwhile* or *Sementara* are lower case mid-sentence and drop out, *Pyongyang* does not.
   NOT BUILT: scripts without letter case (Korean, Chinese, Japanese) give no names.
2. **Seed names.** Names seen at least twice in the seed (or once in its headline), most
   frequent first, names no stored article uses last: what the story is about.
3. **Similar articles.** Stored articles of the window that the topic would match on meaning
   alone (semantic score at or above ``--min-similarity``, by default the topic's threshold),
   or that name at least two seed names as the seed writes them: person and place names
   (*Kim Jong Un*, *Putin*, *Pyongyang*) are spelled alike in many languages and bridge them
   when the model does not.
4. **Candidate spellings.** Names seen in at least ``--min-articles`` similar articles and
   more common there than in the rest of the window: names of this story, not of all news.
5. **Alignment.** An inflected form of a seed name (same words, longer endings: *North
   Korean*, *Putina*) joins it at once. Any other candidate becomes a spelling of the seed
   name that it
   (a) *resembles*: at least half of the words pair up with a word of the seed name (same
   first letter, four letters or more, edit similarity ``WORD_SIMILARITY`` or more, accents
   folded: *Korei* ~ *Korea*, *Rusia* ~ *Russia*, *Pjongjang* ~ *Pyongyang*), or the two
   names' own vectors are ``NAME_VECTOR_SIMILARITY`` close (a multilingual model knows
   *Rosja* is *Russia*);
   (b) *keeps the same company*: the articles naming the candidate name the other seed names
   as the articles naming the seed name do (cosine of their co-occurrence counts over the
   seed's names, at least ``MIN_CONTEXT``). This is how translations are found in comparable
   corpora (Rapp 1999; Fung 1998): *Korea Utara* resembles *North Korea* and *South Korea*
   alike, but keeps company with *Kim Jong Un*, *Putin* and *Pyongyang* like *North Korea*;
   (c) *stands in* for the group: a spelling replaces the name in another language, so at
   most ``MAX_SHARED`` of the candidate's articles also name the group's names so far.
   *South Korea* beside *North Korea*, *Gedung Putih* (the White House) beside *Putin*
   are other names.
   A candidate that fits two seed names equally well is left out.

Spellings of one group that differ only in their word endings become one prefix alias
(*Korea Północna*, *Korei Północnej* -> ``kore* północn*``), the form ``require`` matches
inflected words with, and an alias another alias of the group already finds is dropped.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor import scoring
from monitor.config import Config, TopicConfig
from monitor.embed import QUERY, Embedder
from monitor.errors import NotFoundError
from monitor.pipeline import matching as stage
from monitor.pipeline.runtime import Runtime
from monitor.scoring import normalize
from monitor.store import db, matches

NAME_WORD_CAPITALISED = 0.7
MAX_NAME_WORDS = 4
MIN_SEED_COUNT = 2
WORD_SIMILARITY = 0.6
MIN_PAIRED_WORD = 4
MAX_SHARED = 0.2
NAME_VECTOR_SIMILARITY = 0.8
MIN_CONTEXT = 0.3
MIN_PREFIX = 4
MAX_SEED_NAMES = 12
WINDOW_LIMIT = 50_000
HEADLINE_MAX_CHARS = scoring.HEADING_MAX_CHARS

_TOKEN = re.compile(r"[^\W\d_][\w'’\-]*|[^\w\s]")
# "Korea's" names Korea: the English possessive is not part of a name
_POSSESSIVE = re.compile(r"(?<=\w\w)['’]s$")
_SENTENCE_START = frozenset('.!?…:;"“”«»()[]')


# ----------------------------------------------------------------------------------------------
# Step 1: names in a text


@dataclass
class WordCase:
    """How often each word (casefolded) is capitalised where it does not start a sentence."""

    capitalised: Counter[str] = field(default_factory=Counter)
    lower: Counter[str] = field(default_factory=Counter)

    def add(self, text: str) -> None:
        for word, initial in _words(text):
            if initial:
                continue
            key = word.casefold()
            if word[0].isupper():
                self.capitalised[key] += 1
            elif word[0].islower():
                self.lower[key] += 1

    def is_name_word(self, word: str) -> bool:
        """Acronyms always; capitalised words when mostly capitalised mid-sentence."""
        if _is_acronym(word):
            return True
        if not word[0].isupper() or len(word) < 2:  # "I", "A"
            return False
        key = word.casefold()
        cap, low = self.capitalised[key], self.lower[key]
        return cap + low > 0 and cap / (cap + low) >= NAME_WORD_CAPITALISED


def _is_acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def _words(text: str) -> Iterable[tuple[str, bool]]:
    """(word, starts a sentence) for every word; punctuation comes through as one-char words."""
    initial = True
    for line in text.splitlines():
        initial = True
        for found in _TOKEN.finditer(line):
            token = found.group()
            if not token[0].isalpha():
                initial = token in _SENTENCE_START
                yield token, False
                continue
            yield _POSSESSIVE.sub("", token.rstrip("-'’")), initial
            initial = False


def name_key(name: str) -> str:
    """The form names are compared in: accents and case folded, hyphens read as spaces."""
    return " ".join(normalize(name).replace("-", " ").replace("’", "'").split())


def names_in(text: str, case: WordCase) -> list[str]:
    """Every name in ``text`` as written (a name seen twice is listed twice)."""
    found: list[str] = []
    for line in text.splitlines():
        run: list[str] = []
        for word, _initial in _words(line):
            if word[0].isalpha() and case.is_name_word(word):
                run.append(word)
                continue
            found += _close(run)
            run = []
        found += _close(run)
    return found


def _close(run: list[str]) -> list[str]:
    # a longer run is title case or a list of names, not one name
    return [" ".join(run)] if 0 < len(run) <= MAX_NAME_WORDS else []


# ----------------------------------------------------------------------------------------------
# Steps 2-5 on plain data


@dataclass(frozen=True)
class Spelling:
    """One way the stored articles write a seed name."""

    text: str
    articles: int


@dataclass(frozen=True)
class Group:
    """A proposed ``require`` group: a seed name and the spellings found for it."""

    name: str
    seed_count: int
    articles: int
    spellings: tuple[Spelling, ...]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Corpus:
    """What the steps read: the seed, and the window's article texts with the similar ones."""

    seed_text: str
    seed_title: str
    texts: Sequence[str]
    similar: Sequence[bool]


NameVectors = dict[str, np.ndarray]
# names (as written) -> their unit vectors, by the configured model
NameEncoder = Callable[[list[str]], NameVectors]


def canonical(keys: Iterable[str], anchors: Iterable[str]) -> dict[str, str]:
    """Each name key -> the anchor it is a longer form of (*Presiden Vladimir Putin* ->
    *Putin*: news names a person in full, then by surname), or itself. A key that is a longer
    form of two anchors (*Kim Jong Un* of *Un* and *Jong Un*) keeps its own form."""
    anchor_set = set(anchors)
    mapping = {}
    for key in keys:
        if key in anchor_set:
            mapping[key] = key
            continue
        ends = [a for a in anchor_set if key.endswith(" " + a)]
        mapping[key] = ends[0] if len(ends) == 1 else key
    return mapping


def seed_mentions(seed_text: str, seed_title: str, case: WordCase) -> Counter[str]:
    """Every name of the seed (headline included) -> times named, longer forms counted with
    their shorter one (*Vladimir Putin* and *Putin* are one name)."""
    written = [name_key(n) for n in names_in(seed_title + "\n" + seed_text, case)]
    keys = sorted(set(written), key=lambda k: len(k.split()))
    shortest: list[str] = []
    for key in keys:
        target = canonical([key], shortest)[key]
        if target == key:
            shortest.append(key)
    mapping = canonical(keys, shortest)
    return Counter(mapping[k] for k in written)


def seed_names(mentions: Counter[str], seed_title: str, case: WordCase) -> Counter[str]:
    """Step 2: the seed names of the groups: named twice, or in the headline."""
    in_title = set(canonical({name_key(n) for n in names_in(seed_title, case)}, mentions).values())
    kept = {k: c for k, c in mentions.items() if c >= MIN_SEED_COUNT or k in in_title}
    return Counter(dict(Counter(kept).most_common(MAX_SEED_NAMES)))


def similar_by_names(article_names: Sequence[set[str]], anchors: Iterable[str]) -> list[bool]:
    """Step 3's second road: articles naming at least two names of the seed as it writes them."""
    wanted = set(anchors)
    return [len(names & wanted) >= 2 for names in article_names]


def candidates(
    article_names: Sequence[set[str]], similar: Sequence[bool], min_articles: int
) -> Counter[str]:
    """Step 4: name key -> similar articles naming it, for names of the story."""
    inside = Counter(k for names, s in zip(article_names, similar, strict=True) if s for k in names)
    outside = Counter(
        k for names, s in zip(article_names, similar, strict=True) if not s for k in names
    )
    n_in = max(1, sum(similar))
    n_out = max(1, len(similar) - sum(similar))
    return Counter(
        {k: c for k, c in inside.items() if c >= min_articles and c / n_in > outside[k] / n_out}
    )


def word_similarity(a: str, b: str) -> float:
    """1 - edit distance / longer length, on folded words."""
    if a == b:
        return 1.0
    longer = max(len(a), len(b))
    return 1.0 - _levenshtein(a, b) / longer if longer else 0.0


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def words_pair(a: str, b: str) -> bool:
    """Two folded words are one word spelled two ways: equal, or starting with the same letter,
    four letters or longer, at ``WORD_SIMILARITY`` (*Korei*/*Korea*, *Rusia*/*Russia*; not
    *Asia*/*Rusia*, not *Ria*/*Rusia*)."""
    if a == b:
        return True
    return (
        a[:1] == b[:1]
        and min(len(a), len(b)) >= MIN_PAIRED_WORD
        and word_similarity(a, b) >= WORD_SIMILARITY
    )


def spelling_resemblance(candidate: str, seed: str) -> float:
    """Share of words (of the longer name) that pair up with a word of the other name."""
    left, right = candidate.split(), list(seed.split())
    paired = 0
    for word in left:
        match = next((other for other in right if words_pair(word, other)), None)
        if match is not None:
            paired += 1
            right.remove(match)
    return paired / max(len(left), len(seed.split()))


def resembles(candidate: str, seed: str, vectors: NameVectors) -> bool:
    """Step 5a: by spelling, or by the names' own vectors."""
    if spelling_resemblance(candidate, seed) >= 0.5:
        return True
    if candidate in vectors and seed in vectors:
        return float(vectors[candidate] @ vectors[seed]) >= NAME_VECTOR_SIMILARITY
    return False


Postings = dict[str, list[int]]


def postings(article_names: Sequence[set[str]]) -> Postings:
    """Name -> indexes of the articles naming it (so a profile reads only those articles)."""
    index: Postings = defaultdict(list)
    for i, names in enumerate(article_names):
        for name in names:
            index[name].append(i)
    return index


def context_similarity(
    candidate: str,
    seed: str,
    article_names: Sequence[set[str]],
    anchors: Sequence[str],
    index: Postings,
) -> float:
    """Step 5b: cosine of the co-occurrence counts of the two names with the other seed names."""
    others = [a for a in anchors if a != seed]
    left = _profile(candidate, others, article_names, index)
    right = _profile(seed, others, article_names, index)
    norm = math.sqrt(sum(v * v for v in left)) * math.sqrt(sum(v * v for v in right))
    return sum(a * b for a, b in zip(left, right, strict=True)) / norm if norm else 0.0


def _profile(
    name: str, anchors: Sequence[str], article_names: Sequence[set[str]], index: Postings
) -> list[int]:
    counts = Counter(a for i in index.get(name, ()) for a in anchors if a in article_names[i])
    return [counts[a] for a in anchors]


def align(
    found: Counter[str],
    seeds: Sequence[str],
    anchors: Sequence[str],
    article_names: Sequence[set[str]],
    vectors: NameVectors,
) -> dict[str, list[str]]:
    """Step 5: seed name -> the candidates that are its spellings (most articles first);
    ``anchors`` (every name of the seed) are the company names are compared by.

    An inflected form of a seed name (*North Korean*, *Putina*) joins it at once. Any other
    candidate must also *stand in* for the group so far: a spelling replaces the name in
    another language, so it shares few articles with the group's names (at most
    ``MAX_SHARED`` of its own). A name written beside them is another name: *South Korea*
    next to *North Korea*, *Gedung Putih* (the White House) next to *Putin*.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    index = postings(article_names)
    members: dict[str, set[int]] = {seed: set(index.get(seed, ())) for seed in seeds}
    for candidate, _count in found.most_common():
        if candidate in anchors:
            continue
        own = set(index.get(candidate, ()))
        inflected = [seed for seed in seeds if _merge(seed, candidate) is not None]
        if len(inflected) == 1:
            groups[inflected[0]].append(candidate)
            members[inflected[0]] |= own
            continue
        fits = {
            seed: context_similarity(candidate, seed, article_names, anchors, index)
            for seed in seeds
            if resembles(candidate, seed, vectors)
            and len(own & members[seed]) <= MAX_SHARED * len(own)
        }
        fits = {seed: c for seed, c in fits.items() if c >= MIN_CONTEXT}
        ranked = sorted(fits.values(), reverse=True)
        if not ranked or (len(ranked) > 1 and ranked[0] - ranked[1] < 1e-9):
            continue  # no fit, or fits two seed names equally: ambiguous
        best = max(fits, key=lambda s: fits[s])
        groups[best].append(candidate)
        members[best] |= own
    return groups


def prefix_aliases(spellings: Sequence[str]) -> list[str]:
    """Spellings that differ only in word endings (same word count, each word pair sharing at
    least ``MIN_PREFIX`` first letters) merged into one alias of ``prefix*`` words."""
    aliases: list[str] = []
    for spelling in spellings:
        for i, alias in enumerate(aliases):
            merged = _merge(alias, spelling)
            if merged is not None:
                aliases[i] = merged
                break
        else:
            aliases.append(spelling)
    return aliases


def _merge(alias: str, spelling: str) -> str | None:
    left, right = alias.split(), spelling.split()
    if len(left) != len(right) or alias == spelling:
        return None if alias != spelling else alias
    words = []
    for a, b in zip(left, right, strict=True):
        stem_a = a.rstrip("*")
        common = len(os.path.commonprefix([stem_a, b]))  # noqa: RUF071 (characters, not paths)
        if common == len(stem_a) and (a.endswith("*") or common == len(b)):
            words.append(a)  # already covers b
        elif common >= MIN_PREFIX:
            words.append(stem_a[:common] + "*")
        else:
            return None
    return " ".join(words)


def families(keys: Sequence[str]) -> dict[str, list[str]]:
    """Inflected forms of one name, pooled: prefix alias -> its member keys (most common first).

    *Korea Północna*, *Korei Północnej* and *Koreę Północną* are one name in three cases; on
    their own each may be too rare to count, together they are ``kore* polnocn*``."""
    groups: list[tuple[str, list[str]]] = []
    for key in keys:
        for i, (alias, members) in enumerate(groups):
            merged = _merge(alias, key)
            if merged is not None:
                groups[i] = (merged, [*members, key])
                break
        else:
            groups.append((key, [key]))
    return dict(groups)


@dataclass
class _Names:
    """Names per article (canonical keys, or family aliases) and how each is written."""

    per_article: list[set[str]]
    written: dict[str, Counter[str]]
    members: dict[str, list[str]] = field(default_factory=dict)

    def shown(self, key: str) -> str:
        """A name as it is most often written."""
        forms = self.written.get(key)
        return forms.most_common(1)[0][0] if forms else key

    def alias_forms(self, key: str) -> list[str]:
        """The aliases of a name: its written form, or its family's forms merged."""
        members = self.members.get(key, [key])
        return prefix_aliases([self.shown(m).casefold() for m in members])

    def pool(self, family: dict[str, list[str]]) -> None:
        """Replace inflected forms by their family in every article."""
        owner = {m: alias for alias, members in family.items() for m in members}
        self.per_article = [{owner.get(k, k) for k in names} for names in self.per_article]
        for alias, members in family.items():
            self.members[alias] = members
            self.written[alias] = Counter({self.shown(members[0]): 1})


def _names(corpus: Corpus, case: WordCase, anchors: Iterable[str]) -> _Names:
    written: dict[str, Counter[str]] = defaultdict(Counter)
    keys_per_text: list[list[str]] = []
    for text in corpus.texts:
        names = names_in(text, case)
        for name in names:
            written[name_key(name)][name] += 1
        keys_per_text.append([name_key(n) for n in names])
    for name in names_in(corpus.seed_title + "\n" + corpus.seed_text, case):
        written[name_key(name)][name] += 1
    mapping = canonical({k for keys in keys_per_text for k in keys}, anchors)
    return _Names([{mapping[k] for k in keys} for keys in keys_per_text], written)


def suggest_groups(
    corpus: Corpus, encode_names: NameEncoder, min_articles: int = 2
) -> tuple[list[Group], int]:
    """Steps 1-5 on plain texts: one group per seed name, most frequent in the seed first, and
    how many articles counted as similar (by meaning or by names)."""
    case = WordCase()
    for text in (corpus.seed_title, corpus.seed_text, *corpus.texts):
        case.add(text)
    mentions = seed_mentions(corpus.seed_text, corpus.seed_title, case)
    seeds = seed_names(mentions, corpus.seed_title, case)
    names = _names(corpus, case, mentions)
    by_names = similar_by_names(names.per_article, mentions)
    similar = [a or b for a, b in zip(corpus.similar, by_names, strict=True)]
    in_story = Counter(k for ks, s in zip(names.per_article, similar, strict=True) if s for k in ks)
    names.pool(families([k for k, _ in in_story.most_common() if k not in mentions]))
    found = candidates(names.per_article, similar, min_articles)
    keys = list(seeds) + [c for c in found if c not in seeds]
    # a family resembles by its most common form
    plain = {k: names.members.get(k, [k])[0] for k in keys}
    vectors = encode_names([names.shown(k) for k in keys])
    aligned = align(
        Counter({plain[c]: n for c, n in found.items()}),
        list(seeds),
        list(mentions),
        [{plain.get(k, k) for k in ks} for ks in names.per_article],
        {plain[k]: vectors[names.shown(k)] for k in keys},
    )
    family_of = {plain[k]: k for k in keys}
    groups = []
    for seed, count in seeds.most_common():
        found_for = [family_of[c] for c in aligned.get(seed, [])]
        spellings = tuple(Spelling(_spelling(names, c), found[c]) for c in found_for)
        aliases = [alias for k in [seed, *found_for] for alias in names.alias_forms(k)]
        articles = sum(1 for ks in names.per_article if seed in ks)
        merged = without_redundant(prefix_aliases(aliases))
        groups.append(Group(names.shown(seed), count, articles, spellings, tuple(merged)))
    # names the stored articles never use make poor groups: they come last
    groups.sort(key=lambda g: (g.articles > 0, g.seed_count), reverse=True)
    return groups, sum(similar)


def without_redundant(aliases: Sequence[str]) -> list[str]:
    """Aliases another alias of the group already finds are dropped: ``putin*`` finds every
    text ``władimir* putin*`` finds, ``russia*`` every text ``russia`` finds. The broadest
    (fewest words, most prefixes) are looked at first; the order of the rest is kept."""
    kept: list[str] = []
    for alias in sorted(aliases, key=lambda a: (len(a.split()), -a.count("*"))):
        text = normalize(alias.replace("*", ""))
        patterns = (scoring.alias_pattern(other) for other in kept)
        if not any(pattern is not None and pattern.search(text) for pattern in patterns):
            kept.append(alias)
    return [alias for alias in aliases if alias in kept]


def _spelling(names: _Names, key: str) -> str:
    members = names.members.get(key, [key])
    extra = len(members) - 1
    return names.shown(key) + (f" (+{extra} form{'s' if extra > 1 else ''})" if extra else "")


# ----------------------------------------------------------------------------------------------
# The command's glue: the topic's seed, the stored window, the model


@dataclass(frozen=True)
class Suggestion:
    """Groups for one topic, with the counts the printed comment reports."""

    topic: str
    groups: list[Group]
    window: int
    similar: int


def suggest_for_topic(
    runtime: Runtime,
    name: str,
    *,
    since: datetime,
    min_similarity: float | None = None,
    min_articles: int = 2,
) -> Suggestion:
    """Suggested groups for the configured topic ``name`` from the articles stored since
    ``since`` (newest ``WINDOW_LIMIT``); ``min_similarity`` defaults to the topic's threshold."""
    spec = next((t for t in runtime.config.topics if t.name == name), None)
    if spec is None:
        known = ", ".join(t.name for t in runtime.config.topics) or "none"
        raise NotFoundError(f'no topic "{name}" in {runtime.config.path} (topics: {known})')
    title, body = seed_of(spec, runtime.config)
    embedder = stage.get_embedder(runtime)
    with db.session_scope(runtime.sessions) as session:
        articles = matches.articles_since(session, since, WINDOW_LIMIT)
        texts = [stage.full_text(a) for a in articles]
        model = next((m for _, m in stage.topic_models(runtime, session) if m.name == name), None)
        if model is None:
            raise NotFoundError(f'topic "{name}" is not active in the database')
        vectors, _ = stage.ensure_vectors(
            session, embedder, articles, runtime.config.model.max_seq_length
        )
    bar = model.threshold if min_similarity is None else min_similarity
    similar = [False] * len(articles)
    if articles:
        matrix = np.vstack([vectors[a.id] for a in articles])
        semantic, _, _ = scoring.semantic_scores(model, matrix)
        similar = [bool(score >= bar) for score in semantic]
    corpus = Corpus(seed_text=body, seed_title=title, texts=texts, similar=similar)
    groups, n_similar = suggest_groups(corpus, _name_encoder(embedder), min_articles)
    return Suggestion(name, groups, len(articles), n_similar)


def seed_of(spec: TopicConfig, config: Config) -> tuple[str, str]:
    """(headline, text) of a topic's seed files; descriptions and examples when it has none.

    The headline is the first line of the first seed when it reads like one (short, without
    closing punctuation), as ``topics add`` writes it."""
    texts = [config.resolve(path).read_text(encoding="utf-8") for path in spec.seed]
    if not texts:
        return "", "\n".join([*spec.descriptions, *spec.positive_examples])
    first = next((line.strip() for line in texts[0].splitlines() if line.strip()), "")
    is_headline = len(first) <= HEADLINE_MAX_CHARS and not first.endswith((".", "!", "?", "…"))
    return (first if is_headline else ""), "\n".join(texts)


def _name_encoder(embedder: Embedder) -> NameEncoder:
    def encode(names: list[str]) -> NameVectors:
        # names against names: a symmetric comparison, which E5 scores on the query side
        vectors = (
            embedder.encode(names, kind=QUERY) if names else np.zeros((0, 0), dtype=np.float32)
        )
        return dict(zip(names, vectors, strict=True))

    return encode
