"""Ingress errors, answered with the DOMAIN.md section 8 body."""

from __future__ import annotations

from typing import Any

from schemas.api import error_body


class IngressError(Exception):
    """Bad input: nothing is published, and the caller is told why."""

    def __init__(self, status: int, code: str, source: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.source, self.message = status, code, source, message

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.source, self.message)


class BrokerUnavailableError(Exception):
    """The broker did not acknowledge the write: the store should retry."""
