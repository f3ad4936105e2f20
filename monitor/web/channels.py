"""``/channels``: the configured alert channels, the topics that use them and their outbox
figures; the admin can enable or disable one (written to config.toml) and send it a test
message through the same code as ``monitor alerts test``.

No secret reaches the page: a channel's URL, signing secret and SMTP password are shown as
"set", with the names of the ``${VAR}``s they come from when the file uses variables, never a
value; a delivery error is shown redacted, with the channel's own secrets masked too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from monitor import config_edit
from monitor.config import ChannelConfig, Config
from monitor.errors import DeliveryError, MonitorError, PermanentDeliveryError
from monitor.pipeline.delivery import send_test
from monitor.pipeline.runtime import Runtime
from monitor.redact import redact_text
from monitor.store import db, read_models
from monitor.web.guard import Admin, Reader
from monitor.web.render import page

router = APIRouter(include_in_schema=False)

SECRET_KEYS = ("url", "secret", "smtp_password")


def _secrets(channel: ChannelConfig) -> list[str]:
    values = (getattr(channel, key).get_secret_value() for key in SECRET_KEYS)
    return [v for v in values if v]


def _sources(channel: ChannelConfig) -> list[dict[str, str]]:
    """Each secret that is set, and every key made from variables: where it comes from."""
    out = []
    for key in SECRET_KEYS:
        names = channel.variables.get(key, ())
        if names or getattr(channel, key).get_secret_value():
            out.append({"key": key, "vars": _names(names), "secret": "yes"})
    for key, names in sorted(channel.variables.items()):
        if key not in SECRET_KEYS:
            out.append({"key": key, "vars": _names(names), "secret": ""})
    return out


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"${{{n}}}" for n in names)


def _target(channel: ChannelConfig) -> str:
    """Where it sends, when that is no secret: the SMTP server and how many recipients."""
    if channel.type == "email":
        count = len(channel.recipients)
        return f"{channel.smtp_host}:{channel.smtp_port}, {count} recipient(s)"
    return ""


def channel_rows(config: Config, stats: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, channel in sorted(config.alerts.items()):
        delivery = stats.get(name, {"sent": 0, "failed": 0, "waiting": 0, "last": None})
        last = delivery["last"]
        if last is not None:
            last = {**last, "error": redact_text(last["error"], _secrets(channel))}
        rows.append(
            {
                "name": name,
                "type": channel.type,
                "enabled": channel.enabled,
                "mode": channel.mode,
                "target": _target(channel),
                "topics": [t.name for t in config.topics if name in t.channels],
                "sources": _sources(channel),
                "problems": list(channel.unresolved),
                **delivery,
                "last": last,
            }
        )
    return rows


def _render(request: Request, status: int = 200, **outcome: str) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    with db.session_scope(runtime.sessions) as s:
        stats = read_models.channel_deliveries(s)
    context = {"message": "", "error": "", **outcome}
    rows = channel_rows(runtime.config, stats)
    return page(request, "channels.html.j2", status, channels=rows, **context)


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, _role: Reader) -> Response:
    return _render(request)


def _known(request: Request, name: str) -> HTMLResponse | None:
    if name in request.app.state.runtime.config.alerts:
        return None
    message = f'no channel "{name}" under [alerts] in the config'
    return page(request, "not_found.html.j2", 404, message=message)


@router.post("/channels/{name}/enable", response_class=HTMLResponse)
async def enable(request: Request, name: str, _role: Admin) -> Response:
    return await _set_enabled(request, name, True)


@router.post("/channels/{name}/disable", response_class=HTMLResponse)
async def disable(request: Request, name: str, _role: Admin) -> Response:
    return await _set_enabled(request, name, False)


async def _set_enabled(request: Request, name: str, enabled: bool) -> Response:
    unknown = _known(request, name)
    if unknown is not None:
        return unknown
    runtime: Runtime = request.app.state.runtime
    try:
        config = await run_in_threadpool(
            config_edit.set_channel_enabled, runtime.config.path, name, enabled
        )
    except MonitorError as exc:
        return await run_in_threadpool(_render, request, 400, error=str(exc))
    runtime.config = config  # this process delivers with it from the next cycle
    state = "enabled" if enabled else "disabled"
    message = f'Channel "{name}" {state} in config.toml.'
    return await run_in_threadpool(_render, request, message=message)


@router.post("/channels/{name}/test", response_class=HTMLResponse)
async def send_test_message(request: Request, name: str, _role: Admin) -> Response:
    unknown = _known(request, name)
    if unknown is not None:
        return unknown
    config: Config = request.app.state.runtime.config
    try:
        await run_in_threadpool(send_test, config, name)
    except DeliveryError as exc:
        kind = "permanent" if isinstance(exc, PermanentDeliveryError) else "temporary"
        reason = redact_text(str(exc), _secrets(config.alerts[name]))
        error = f'Test message through "{name}" failed ({kind}): {reason}'
        return await run_in_threadpool(_render, request, 502, error=error)
    except MonitorError as exc:  # e.g. a ${VAR} of the channel is not set
        reason = redact_text(str(exc), _secrets(config.alerts[name]))
        return await run_in_threadpool(_render, request, 400, error=reason)
    message = f'Test message sent through "{name}".'
    return await run_in_threadpool(_render, request, message=message)
