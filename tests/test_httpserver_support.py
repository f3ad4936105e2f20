"""The test server itself: routes, recording, streaming and truncation behave as tests expect."""

from __future__ import annotations

import httpx

from tests.support.httpserver import LocalServer, Reply


def test_serves_routes_and_records_requests() -> None:
    with LocalServer() as server:
        server.route("/a", Reply(body=b"hello", headers={"ETag": '"x"'}))
        response = httpx.get(server.url("/a"), headers={"X-Test": "1"})
        assert response.status_code == 200
        assert response.text == "hello"
        assert response.headers["etag"] == '"x"'
        assert server.requests_to("/a")[0].header("x-test") == "1"
        assert httpx.get(server.url("/missing")).status_code == 404


def test_streams_generator_bodies_and_handlers() -> None:
    with LocalServer() as server:
        server.route("/big", Reply(body=(b"x" * 1000 for _ in range(100))))
        server.route("/echo", lambda req: Reply(status=201, body=req.body))
        assert len(httpx.get(server.url("/big")).content) == 100_000
        assert httpx.post(server.url("/echo"), content=b"ping").content == b"ping"
