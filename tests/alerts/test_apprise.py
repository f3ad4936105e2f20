"""The optional Apprise channel, through Apprise's own json:// notifier to the local server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from monitor.pipeline.delivery import dispatch_due
from tests.alerts.conftest import Env
from tests.support.httpserver import LocalServer, Reply

pytest.importorskip("apprise")
pytestmark = pytest.mark.filterwarnings("ignore:.imghdr. is deprecated:DeprecationWarning")


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def test_apprise_url_delivers_and_failures_are_retried(
    make_env: Callable[..., Env], receiver: LocalServer
) -> None:
    replies = [Reply(status=500, body=b"no")]
    receiver.route("/apprise", lambda _r: replies.pop(0) if replies else Reply(body=b"ok"))
    env = make_env(
        f"""
    [alerts.tail]
    type = "apprise"
    url = "json://127.0.0.1:{receiver.port}/apprise"
    """,
        """
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["tail"]
    """,
    )
    env.match("Kim & Putin <meet>")
    assert dispatch_due(env.runtime).retried == 1
    assert env.deliveries()[0].last_error.startswith("apprise: ")
    env.clock.advance(minutes=5)
    assert dispatch_due(env.runtime).sent == 1
    body = json.loads(receiver.requests_to("/apprise")[-1].body)
    assert body["title"] == "[t1] Kim & Putin <meet>"
    assert "Source: Feed A" in body["message"]


def test_unknown_apprise_scheme_fails_permanently(make_env: Callable[..., Env]) -> None:
    env = make_env(
        """
    [alerts.tail]
    type = "apprise"
    url = "nosuchservice://token"
    """,
        """
    [[topics]]
    name = "t1"
    descriptions = ["x"]
    channels = ["tail"]
    """,
    )
    env.match("x")
    assert dispatch_due(env.runtime).failed == 1
    assert "does not understand this URL (nosuchservice://...)" in env.deliveries()[0].last_error
