"""Webhooks reach public addresses only, checked on the address connected to."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from projections.addresses import NotPublicError, public_address, transport

LIMITS = httpx.Limits(max_connections=4)


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "[::1]", "localhost"])
async def test_loopback_link_local_and_private_hosts_are_refused(host: str) -> None:
    with pytest.raises(NotPublicError, match="not a public address"):
        await public_address(host, 443)


async def test_a_public_literal_is_connected_to_as_it_is() -> None:
    assert await public_address("93.184.216.34", 443) == "93.184.216.34"


async def test_a_name_that_resolves_to_a_private_address_at_send_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: public when the endpoint was registered, the metadata service now."""
    loop = asyncio.get_running_loop()

    async def rebound(host: str, port: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebound)
    with pytest.raises(NotPublicError, match=r"169\.254\.169\.254"):
        await public_address("hooks.example.com", 443)


async def test_the_dispatchers_client_sends_nothing_to_a_private_receiver() -> None:
    reached: list[bytes] = []

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        url = f"http://127.0.0.1:{port}/hook"
        async with httpx.AsyncClient(transport=transport(LIMITS, allow_private=False)) as http:
            with pytest.raises(httpx.ConnectError, match="not a public address"):
                await http.post(url, content=b"{}")
        assert reached == []
        # Development: receivers on this machine are allowed.
        async with httpx.AsyncClient(transport=transport(LIMITS, allow_private=True)) as http:
            assert (await http.post(url, content=b"{}")).status_code == 204
        assert len(reached) == 1
