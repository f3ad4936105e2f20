"""Fixtures for the query side: a migrated database filled by :func:`data.populate`, a config
file pointing at it, and the packaged model (loaded once per session)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.config import PACKAGED_MODEL, Config, ModelConfig, load_config
from monitor.embed import load_embedder
from monitor.pipeline.runtime import Runtime, open_runtime
from monitor.store import db
from tests.query.data import Seeded, populate
from tests.support.models import pin_model

TOKEN = "s3cret-test-token"


def config_text(url: str, extra: str = "", model: str = PACKAGED_MODEL) -> str:
    return pin_model(
        textwrap.dedent(f"""
        [database]
        url = "{url}"

        [api]
        token = "${{TEST_API_TOKEN:-}}"
        heartbeat_max_age = "60s"

        [alerts.console]
        type = "console"

        [[topics]]
        name = "alliance"
        descriptions = ["North Korea sends troops and arms to Russia"]

        [[topics]]
        name = "sanctions"
        descriptions = ["Sanctions on North Korea and Russia"]
        """)
        + extra,
        model,
    )


@dataclass
class QueryEnv:
    config_path: Path
    config: Config
    runtime: Runtime
    seeded: Seeded


def _env(url: str, tmp_path: Path, model_id: str = "test-model") -> Iterator[QueryEnv]:
    path = tmp_path / "config.toml"
    path.write_text(config_text(url), encoding="utf-8")
    config = load_config(path, environ={})
    runtime = open_runtime(config)
    with db.session_scope(runtime.sessions) as session:
        seeded = populate(session, model_id=model_id)
    try:
        yield QueryEnv(path, config, runtime, seeded)
    finally:
        runtime.close()


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path) -> Iterator[QueryEnv]:
    """SQLite database with the standard data (fast; most tests)."""
    yield from _env(sqlite_url, tmp_path)


@pytest.fixture
def env_any(db_url: str, tmp_path: Path) -> Iterator[QueryEnv]:
    """The same data on SQLite and on PostgreSQL."""
    yield from _env(db_url, tmp_path)


@pytest.fixture(scope="session")
def embedder() -> object:
    """The real packaged all-MiniLM-L6-v2 (named: the tests' fast model, whatever the shipped
    default), through the same loader the CLI and API use."""
    return load_embedder(ModelConfig(name=PACKAGED_MODEL))


MakeEnv = Callable[..., QueryEnv]
