"""Alert channels behind a registry: one module per channel type.

A channel module defines a class with ``send(message, key)`` and decorates it with
:func:`register`; :func:`make_channel` imports every module of this package once, so adding a
channel is adding one module (plus its name in ``ChannelConfig.type``). ``send`` raises
:class:`~monitor.errors.DeliveryError` (retry later) or
:class:`~monitor.errors.PermanentDeliveryError` (retrying will not help), with a message that
says exactly what failed (DNS, TCP, TLS, auth, HTTP status and body).

``key`` is the delivery's idempotency key: HTTP channels send it as the ``Idempotency-Key``
header and email uses it as a stable ``Message-ID``, so a resend after a crash can be recognised
by the receiver.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Protocol

from monitor.alert.message import Alert, Message
from monitor.config import ChannelConfig
from monitor.errors import ConfigError

__all__ = ["Alert", "Channel", "Message", "make_channel", "register"]


class Channel(Protocol):
    name: str

    def send(self, message: Message, key: str) -> None:
        """Deliver ``message`` or raise DeliveryError; must finish within the channel timeout."""


ChannelFactory = Callable[[str, ChannelConfig], Channel]
_REGISTRY: dict[str, ChannelFactory] = {}
_NOT_CHANNELS = {"message", "render", "netdiag", "http", "schedule"}


def register(type_name: str) -> Callable[[ChannelFactory], ChannelFactory]:
    """Class decorator: make a channel type available under ``type_name``."""

    def wrap(factory: ChannelFactory) -> ChannelFactory:
        _REGISTRY[type_name] = factory
        return factory

    return wrap


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_CHANNELS:
            importlib.import_module(f"{__name__}.{info.name}")


def channel_types() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def make_channel(name: str, config: ChannelConfig) -> Channel:
    """Build the channel ``name`` from its config table; its ${VAR}s must be set by now."""
    config.check_resolved()
    if config.type not in _REGISTRY:
        _load_all()
    factory = _REGISTRY.get(config.type)
    if factory is None:
        raise ConfigError(
            f'alerts.{name}: channel type "{config.type}" is not available '
            f"(available: {', '.join(sorted(_REGISTRY))})"
        )
    return factory(name, config)
