"""Say exactly what failed on the network: DNS, TCP, TLS, timeout. Used by every channel so
``monitor alerts test`` and the outbox's ``last_error`` read the same way."""

from __future__ import annotations

import socket
import ssl


def describe(exc: BaseException, target: str) -> str:
    """One line naming the layer that failed, e.g. ``TCP: connection refused by host:25``."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for item in chain:
        if isinstance(item, socket.gaierror):
            return f"DNS: cannot resolve {target}: {item.strerror or item}"
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"TLS: certificate of {target} not trusted: {item.verify_message or item}"
        if isinstance(item, ssl.SSLError):
            return f"TLS: handshake with {target} failed: {item.reason or item}"
        if isinstance(item, ConnectionRefusedError):
            return f"TCP: connection refused by {target}"
        if isinstance(item, ConnectionResetError):
            return f"TCP: connection reset by {target}"
        if isinstance(item, TimeoutError | socket.timeout):
            return f"timeout: no answer from {target} in time"
        if isinstance(item, OSError) and item.errno is not None:
            return f"TCP: {target}: {item.strerror or item}"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"DNS: cannot resolve {target}: {text}"
    if "connection refused" in lowered:
        return f"TCP: connection refused by {target}"
    if "ssl" in lowered or "certificate" in lowered:
        return f"TLS: {target}: {text}"
    return f"{type(exc).__name__}: {target}: {text}"
