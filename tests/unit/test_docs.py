"""/docs and /redoc render offline: every asset they load is served by the service itself."""

from __future__ import annotations

import re

import httpx
import pytest

from ingress.app import Ingress, create_app
from runtime.catalog import load_catalog
from tests.unit.test_ingress_app_store import MemoryPublisher


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_docs_load_nothing_from_another_host(page: str) -> None:
    app = create_app(Ingress(catalog=load_catalog(), publisher=MemoryPublisher()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        html = (await http.get(page)).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert assets
        for asset in assets:
            assert not asset.startswith(("http://", "https://", "//")), asset
            assert (await http.get(asset)).status_code == 200, asset


async def test_the_docs_can_be_switched_off() -> None:
    app = create_app(Ingress(catalog=load_catalog(), publisher=MemoryPublisher()), docs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/redoc")).status_code == 404
