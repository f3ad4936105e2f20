"""The web app's tests reuse the query side's data (tests/query/data.py: two topics, three
feeds, fifteen matches, a hostile title) and add clients for the two roles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from monitor.api import create_app
from tests.query.conftest import embedder, env  # noqa: F401 (fixtures)

ADMIN = "admin-token-for-tests"
READER = "read-only-token-for-tests"
BASE = "http://localhost"  # the Host allow-list answers to names of this machine


@pytest.fixture
def make_client(env) -> Callable[[str], TestClient]:  # noqa: F811
    """A client of an app with both tokens, sending ``token`` as its bearer ("" for none)."""

    def make(token: str) -> TestClient:
        app = create_app(env.runtime, token=ADMIN, read_token=READER)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return TestClient(app, base_url=BASE, headers=headers)

    return make


@pytest.fixture
def open_client(env) -> TestClient:  # noqa: F811
    """No token configured: loopback trust, every caller is admin."""
    return TestClient(create_app(env.runtime, token=""), base_url=BASE)
