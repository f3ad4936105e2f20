"""Email over SMTP: STARTTLS, implicit TLS or plain; optional auth; multipart text + HTML.

The Message-ID is derived from the delivery's idempotency key, so a resend after a crash carries
the same Message-ID and mail clients (and archives) show it once.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from monitor.alert import netdiag, register, render
from monitor.alert.message import Message
from monitor.config import ChannelConfig
from monitor.errors import DeliveryError, PermanentDeliveryError


def message_id(key: str) -> str:
    return "<" + re.sub(r"[^A-Za-z0-9.\-_]", "_", key) + "@monitor.alerts>"


def build_email(message: Message, key: str, sender: str, recipients: list[str]) -> EmailMessage:
    """A multipart/alternative email: the plain-text part first, then HTML."""
    mail = EmailMessage()
    mail["Subject"] = render.subject(message)
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(key)
    mail["X-Monitor-Idempotency-Key"] = key
    mail.set_content(render.email_text(message))
    mail.add_alternative(render.email_html(message), subtype="html")
    return mail


@register("email")
class EmailChannel:
    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config

    @property
    def target(self) -> str:
        return f"{self.config.smtp_host}:{self.config.smtp_port}"

    def send(self, message: Message, key: str) -> None:
        recipients = list(message.recipients) or list(self.config.recipients)
        if not recipients:
            raise PermanentDeliveryError(f"alerts.{self.name}: no recipients for this alert")
        mail = build_email(message, key, self.config.sender, recipients)
        try:
            with self._connect() as smtp:
                self._login(smtp)
                smtp.send_message(mail, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as exc:
            # kept retryable: once the password is fixed, queued alerts still go out
            raise DeliveryError(
                f"auth: {self.target} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(
                f"SMTP: {self.target} refused every recipient: {_refused(exc.recipients)}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.smtp_code} from {self.target}: {_text(exc.smtp_error)}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(text) from exc
            raise DeliveryError(text) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"auth: {self.target} offers no login (AUTH) on this "
                f"connection: {exc}; check smtp_security"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(netdiag.describe(exc, self.target)) from exc

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.smtp_security == "tls":
            return smtplib.SMTP_SSL(
                cfg.smtp_host,
                cfg.smtp_port,
                timeout=cfg.timeout,
                context=ssl.create_default_context(),
            )
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout)
        try:
            if cfg.smtp_security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"TLS: {self.target} does not offer STARTTLS; "
                        'set smtp_security = "plain" or "tls"'
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        if self.config.smtp_username:
            smtp.login(self.config.smtp_username, self.config.smtp_password.get_secret_value())


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr} ({code} {_text(msg)})" for addr, (code, msg) in recipients.items())
