"""`Authorization: Api-Key <key>`, compared in constant time against the configured keys."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import Request

from api.errors import NOT_AUTHENTICATED

SCHEME = "Api-Key "


class ApiKeys:
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys if key]

    async def check(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header.startswith(SCHEME):
            raise NOT_AUTHENTICATED
        # The key exactly as sent: one with spaces around it is another key.
        given = header[len(SCHEME) :].encode()
        # Every key is compared, so the time taken does not tell which one nearly matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise NOT_AUTHENTICATED
