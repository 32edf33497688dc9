"""API errors, answered with the DOMAIN.md section 8 body and Adapty's codes (facts 1.8.5)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import json_response
from schemas.api import error_body
from schemas.outputs import Rejection

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Bad input or an unknown profile: nothing is published, and the caller is told why."""

    def __init__(self, status: int, code: str, source: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.source, self.message = status, code, source, message

    @classmethod
    def of(cls, rejection: Rejection) -> ApiError:
        return cls(rejection.status_code, rejection.error_code, rejection.source, rejection.message)

    def response(self) -> Response:
        return json_response(
            error_body(self.status, self.code, self.source, self.message), self.status
        )


NOT_AUTHENTICATED = ApiError(
    401, "not_authenticated", "non_field_errors", "Authentication credentials were not provided."
)
PROFILE_DOES_NOT_EXIST = ApiError(404, "profile_does_not_exist", None, "Profile does not exist")


def _source(location: Sequence[int | str]) -> str:
    # FastAPI prefixes where the value came from; the caller knows its own field names.
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "non_field_errors"


def _code(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind == "enum" or kind == "literal_error":
        return "enum"
    if kind.startswith(("datetime", "date")) or "UTC offset" in str(error.get("msg", "")):
        return "datetime"
    if kind == "missing":
        return "base_error"
    return "validation_error"


def from_validation(error: ValidationError | RequestValidationError) -> ApiError:
    """The first problem of a refused body or query, in Adapty's terms."""
    first = error.errors()[0]
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        message = "Field required"
    return ApiError(400, _code(first), _source(first.get("loc", ())), message)


async def api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.response()


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


async def http_error(request: Request, error: Exception) -> Response:
    """Routing's own answers (404, 405, ...) in the one error shape, their headers kept."""
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    response = json_response(
        error_body(error.status_code, code, None, str(error.detail)), error.status_code
    )
    response.headers.update(error.headers or {})
    if error.status_code == 405:
        # Starlette names the methods of the first route on the path; every route counts.
        response.headers["Allow"] = ", ".join(_methods_of(request))
    return response


def _methods_of(request: Request) -> list[str]:
    """Every method the API serves at the request's path, from its published paths."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


async def database_unavailable(request: Request, error: Exception) -> Response:
    """The read models' database is restarting or unreachable: nothing was written."""
    log.warning("database unavailable: %s", type(error).__name__)
    body = error_body(
        503, "database_unavailable", "non_field_errors", "the database is unavailable; retry later"
    )
    response = json_response(body, 503)
    response.headers["Retry-After"] = "5"
    return response


async def invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError | ValidationError)
    return from_validation(error).response()
