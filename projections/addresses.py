"""Webhooks reach public addresses only, checked on the address actually connected to.

An endpoint's URL is checked when it is registered (api/webhooks.py), but a name can
resolve elsewhere later (DNS rebinding: public when registered, 169.254.169.254 when
sent to). The dispatcher's connections therefore go through `PublicOnly`, an httpcore
network backend that resolves the host itself, refuses a loopback, link-local, private or
otherwise non-public address, and connects to the address it checked (TLS still names
the host, for the certificate).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class NotPublicError(httpcore.ConnectError):
    """The endpoint's host is, or resolves to, an address that is not public."""


async def public_address(host: str, port: int) -> str:
    """An address of `host` to connect to; refused when any address it has is not public
    (so that a name with one public and one private address cannot be steered)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as error:
            raise httpcore.ConnectError(f"{host} does not resolve: {error}") from error
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    for address in addresses:
        if not address.is_global:
            named = f"{address}" if str(address) == host.strip("[]") else f"{host} ({address})"
            raise NotPublicError(
                f"{named} is not a public address (SUBLEDGER_WEBHOOK_PRIVATE_ADDRESSES allows it)"
            )
    return str(addresses[0])


class PublicOnly(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to checked public addresses."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await public_address(host, port)
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise NotPublicError("webhooks are not sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(limits: httpx.Limits, allow_private: bool) -> httpx.AsyncHTTPTransport:
    """httpx's transport, reaching only public addresses unless `allow_private`."""
    made = httpx.AsyncHTTPTransport(limits=limits)
    if not allow_private:
        # httpx builds its connection pool without a way to hand it a network backend.
        pool: Any = made._pool
        pool._network_backend = PublicOnly(pool._network_backend)
    return made
