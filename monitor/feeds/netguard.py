"""Refusing private network targets when ``polling.allow_private_addresses`` is false.

Feed URLs come from config files, from ``feeds add`` and from the redirects of servers we do not
control. On a shared or cloud host a feed URL (or a redirect) pointing at ``127.0.0.1``,
``10.x``, ``169.254.169.254`` (cloud metadata) or ``[::1]`` would make monitor fetch internal
services. With the option off, every hop is checked before it is requested: the host name is
resolved and *every* address it resolves to must be global (one private address among public
ones is refused too). After the connection is made, the address actually connected to is
checked again, so a DNS answer that changes between the check and the connect (rebinding) gets
no body read. The default (true) suits a self-hosted reader that polls feeds on its own network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import FetchError

HINT = "polling.allow_private_addresses = false"


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; loopback, private (10/8, 172.16/12,
    192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), shared (100.64/10), unspecified
    and multicast addresses are not. An IPv4-mapped IPv6 address is judged as its IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def require_public_host(url: str) -> None:
    """Raise :class:`FetchError` unless every address of the URL's host is public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot resolve {host!r}: {exc}", url=url) from None
    for *_family, sockaddr in infos:
        address = str(sockaddr[0])
        if not is_public(address):
            raise FetchError(_refusal(host, address), url=url)


def require_public_peer(url: str, extensions: dict[str, Any]) -> None:
    """Raise :class:`FetchError` when the connection made for ``url`` reached a non-public
    address (the name resolved differently at connect time)."""
    stream = extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not is_public(str(peer[0])):
        raise FetchError(_refusal(urlsplit(url).hostname or "", str(peer[0])), url=url)


def _refusal(host: str, address: str) -> str:
    return f"refused: {host} is at {address}, a loopback, private or link-local address ({HINT})"
