"""Email over STARTTLS and implicit TLS with login, against a real aiosmtpd server holding a
self-signed certificate that the test makes trusted through SSL_CERT_FILE."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.pipeline.delivery import dispatch_due
from tests.alerts.conftest import Env, RecordingHandler, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what a private CA bundle would do
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def accept_desk(
    _server: object, _session: object, _envelope: object, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"desk", b"pw")
    return AuthResult(success=ok, handled=False)


def channel(port: int, security: str) -> str:
    return f"""
    [alerts.mail]
    type = "email"
    smtp_host = "127.0.0.1"
    smtp_port = {port}
    smtp_security = "{security}"
    smtp_username = "desk"
    smtp_password = "pw"
    recipients = ["desk@example.org"]
    timeout = "5s"
    """


TOPIC = '[[topics]]\nname = "t1"\ndescriptions = ["x"]\nchannels = ["mail"]\n'


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_login_over_tls_delivers(
    make_env: Callable[..., Env], certificate: ssl.SSLContext, security: str
) -> None:
    handler = RecordingHandler()
    port = free_port()
    kwargs = (
        {"tls_context": certificate, "require_starttls": True}
        if security == "starttls"
        # aiosmtpd does not see implicit TLS as TLS, so it would hide AUTH without this
        else {"ssl_context": certificate, "auth_require_tls": False}
    )
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=accept_desk,
        auth_required=True,
        **kwargs,
    )  # type: ignore[arg-type]
    controller.start()
    try:
        env = make_env(channel(port, security), TOPIC)
        env.match("over TLS")
        report = dispatch_due(env.runtime)
    finally:
        controller.stop()
    assert report.sent == 1, env.deliveries()[0].last_error
    assert [m["Subject"] for m in handler.messages] == ["[t1] over TLS"]
