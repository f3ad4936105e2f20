"""The web app's tests reuse the query side's data (tests/query/data.py: two topics, three
feeds, fifteen matches, a hostile title) and add clients for the two roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.api import create_app
from monitor.config import load_config
from monitor.pipeline.runtime import open_runtime
from monitor.store import db
from tests.query.conftest import QueryEnv, config_text, embedder  # noqa: F401 (fixture)
from tests.query.data import populate
from tests.support.forms import FormClient

ADMIN = "admin-token-for-tests"
READER = "read-only-token-for-tests"
BASE = "http://localhost"  # the Host allow-list answers to names of this machine
# the feeds and topics pages fetch from the tests' loopback servers
LOOPBACK = "\n[polling]\nallow_private_addresses = true\n"


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, embedder) -> Iterator[QueryEnv]:  # noqa: F811
    """tests/query's data on SQLite, loopback fetches allowed, the session's model loaded."""
    path = tmp_path / "config.toml"
    path.write_text(config_text(sqlite_url, LOOPBACK), encoding="utf-8")
    config = load_config(path, environ={})
    runtime = open_runtime(config)
    runtime.resources.embedder = embedder
    with db.session_scope(runtime.sessions) as session:
        seeded = populate(session)
    try:
        yield QueryEnv(path, config, runtime, seeded)
    finally:
        runtime.resources.embedder = None  # the session's model outlives this runtime
        runtime.close()


@pytest.fixture
def make_client(env) -> Callable[[str], FormClient]:
    """A client of an app with both tokens, sending ``token`` as its bearer ("" for none)."""

    def make(token: str) -> FormClient:
        app = create_app(env.runtime, token=ADMIN, read_token=READER)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return FormClient(app, base_url=BASE, headers=headers)

    return make


@pytest.fixture
def open_client(env) -> FormClient:
    """No token configured: loopback trust, every caller is admin."""
    return FormClient(create_app(env.runtime, token=""), base_url=BASE)
