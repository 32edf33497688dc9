"""The console's session: a signed cookie naming the API key it was opened with, and the
token every form of the session carries (CSRF).

The cookie holds no key, only a fingerprint of it; the key stays in the server's
settings. Its signature is keyed by the configured API keys, so removing a key from the
settings ends the sessions opened with it, and every replica of the HTTP service with
the same keys accepts the same cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "subledger_console"
# Before sign-in: the token the sign-in form carries, set beside it (double submit).
SIGN_IN_COOKIE = "subledger_console_sign_in"
PATH = "/console"


def fingerprint(key: str) -> str:
    return hashlib.sha256(b"subledger console key\x00" + key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Session:
    """A signed-in console user: the key they proved, and their forms' token."""

    key: str
    csrf: str

    def accepts(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, keys: Iterable[str], max_age: int) -> None:
        self._keys = {fingerprint(key): key for key in keys if key}
        secret = hashlib.sha256(
            b"subledger console session\x00" + b"\x00".join(sorted(k.encode() for k in self._keys))
        ).digest()
        self._serializer = URLSafeTimedSerializer(secret, salt="console-session")
        self.max_age = max_age

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def sign_in(self, given: str) -> str | None:
        """The cookie value for a session opened with `given`, if it is a configured key
        (every key is compared, so the time taken tells nothing)."""
        matched: str | None = None
        for key in self._keys.values():
            if hmac.compare_digest(given.encode(), key.encode()):
                matched = key
        if matched is None:
            return None
        return self._serializer.dumps({"k": fingerprint(matched), "c": secrets.token_urlsafe(24)})

    def open(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, if its signature holds, it is not older than
        `max_age` and its key is still configured."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        key = self._keys.get(str(data.get("k")))
        csrf = data.get("c")
        if key is None or not isinstance(csrf, str):
            return None
        return Session(key=key, csrf=csrf)
