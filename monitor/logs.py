"""Structured logging: one line per event, ``key=value`` by default or JSON.

Call sites pass fields through ``extra={"fields": {...}}`` or :func:`event`; secrets never go in
fields (config holds them as ``SecretStr``). URLs and exception texts do (httpx quotes the URL it
failed on, userinfo and all), so both formatters pass the finished line through
:func:`monitor.redact.redact_text`: no password, token path segment or secret query value of a
URL reaches a log line, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from monitor.redact import redact_text

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", {}) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != "fields":
            fields[key] = value
    return fields


def _kv_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        parts = [f"ts={stamp[:-4]}Z", f"level={record.levelname.lower()}", f"logger={record.name}"]
        parts.append(f"msg={_kv_value(record.getMessage())}")
        parts += [f"{k}={_kv_value(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_kv_value(self.formatException(record.exc_info))}")
        return redact_text(" ".join(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(
            {
                k: v if isinstance(v, int | float | bool | None) else str(v)
                for k, v in _fields(record).items()
            }
        )
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(data, ensure_ascii=False))


def setup_logging(level: str = "INFO", fmt: str = "keyvalue") -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in (
        "httpx",
        "httpcore",
        "apscheduler",
        "sentence_transformers",
        "urllib3",
        "transformers",
        "alembic",
        "filelock",
        "huggingface_hub",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log one event with structured fields: ``event(log, INFO, "feed polled", feed_id=3)``."""
    logger.log(level, msg, extra={"fields": fields})
