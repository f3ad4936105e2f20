"""Matching fixtures: the real packaged model (loaded once per session) and small topic configs
written on the fly around a seed article written for these tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import PACKAGED_MODEL, Config, ModelConfig, load_config
from monitor.embed import SentenceTransformerEmbedder, load_embedder
from tests.support.models import pin_model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "matching"
SEED = FIXTURES / "alliance-seed.en.txt"

TOPIC = """
[[topics]]
name = "alliance"
seed = ["seeds/alliance.txt"]
descriptions = ["North Korea sends weapons to Russia; Kim Jong Un meets Putin"]
require = [
  ["north korea*", "pyongyang", "kim jong un", "korea utara", "kore* północn*", "북한*", "кндр"],
  ["russia*", "moscow", "putin*", "rusia", "rosj*", "러시아*", "росси*"],
]
threshold = {threshold}
channels = ["console"]
"""


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, once per test session: tests that need *a* real model
    use this one, the fastest; tests of the multilingual model ask for it by name."""
    return load_embedder(ModelConfig(name=PACKAGED_MODEL))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write config.toml (with the test seed copied next to it) and load it."""

    def make(
        *,
        topics: str | None = None,
        threshold: float = 0.4,
        extra: str = "",
        db_url: str | None = None,
    ) -> Config:
        (tmp_path / "seeds").mkdir(exist_ok=True)
        shutil.copy(SEED, tmp_path / "seeds" / "alliance.txt")
        url = db_url or f"sqlite:///{tmp_path / 'monitor.db'}"
        text = f'[database]\nurl = "{url}"\n\n[alerts.console]\ntype = "console"\n{extra}\n'
        text += topics if topics is not None else TOPIC.format(threshold=threshold)
        path = tmp_path / "config.toml"
        path.write_text(pin_model(text), encoding="utf-8")
        return load_config(path)

    return make
