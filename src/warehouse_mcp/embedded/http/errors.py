"""The one place where failures become HTTP answers, in the two shapes PostHog answers with.

Standard CRUD answers DRF's shape `{"type", "code", "detail", "attr"}`; most custom actions answer
`{"message": ...}`. The domain's errors (`domain/errors.py`) map to them here: `Invalid` → DRF's 400,
`NotFound` (and the store's `RowNotFound`, Starlette's own 404) → DRF's 404, `Refused` → `{"message"}` 400,
`Conflict` → `{"message"}` 409. The http layer's own failures (authentication, unparsable JSON, a wrong
method) are `ErrorAnswer`s with their status and body. Anything else is logged with its traceback and
answered as a generic 500, never with its text (it could quote a source's error).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warehouse_mcp.embedded.domain.errors import Conflict, DomainError, Invalid, NotFound, Refused
from warehouse_mcp.embedded.store import RowNotFound

logger = logging.getLogger(__name__)

ErrorType = Literal[
    "validation_error", "invalid_request", "authentication_error", "throttled_error", "server_error"
]


class ErrorAnswer(Exception):
    """An error answer: `status` plus the JSON `body` to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail") or body.get("message") or f"HTTP {status}")
        self.status = status
        self.body = body


def drf_error(
    status: int, error_type: ErrorType, detail: str, code: str = "invalid", attr: str | None = None
) -> ErrorAnswer:
    return ErrorAnswer(status, {"type": error_type, "code": code, "detail": detail, "attr": attr})


def not_found() -> ErrorAnswer:
    return drf_error(404, "invalid_request", "Not found.", "not_found")


def method_not_allowed(method: str) -> ErrorAnswer:
    return drf_error(405, "invalid_request", f'Method "{method}" not allowed.', "method_not_allowed")


def parse_error(reason: str) -> ErrorAnswer:
    return drf_error(400, "invalid_request", f"JSON parse error - {reason}", "parse_error")


def not_authenticated() -> ErrorAnswer:
    return drf_error(
        401, "authentication_error", "Authentication credentials were not provided.", "not_authenticated"
    )


def authentication_failed() -> ErrorAnswer:
    return drf_error(401, "authentication_error", "Invalid personal API key.", "authentication_failed")


def server_error() -> ErrorAnswer:
    return drf_error(500, "server_error", "A server error occurred.", "error")


def domain_answer(error: DomainError) -> ErrorAnswer:
    """The answer PostHog gives for a domain error."""
    if isinstance(error, Invalid):
        return drf_error(400, "validation_error", error.message, error.code, error.field)
    if isinstance(error, NotFound):
        return drf_error(404, "invalid_request", error.message, "not_found")
    if isinstance(error, Conflict):
        return ErrorAnswer(409, {"message": error.message})
    if isinstance(error, Refused):
        return ErrorAnswer(400, {"message": error.message})
    logger.error("no answer shape for %s", type(error).__name__)  # a new DomainError needs its shape here
    return server_error()


def error_response(error: ErrorAnswer) -> Response:
    return JSONResponse(error.body, status_code=error.status)


def answer(request: Request, exc: Exception) -> Response:
    """The answer to a request that failed with `exc`."""
    if isinstance(exc, ErrorAnswer):
        return error_response(exc)
    if isinstance(exc, DomainError):
        return error_response(domain_answer(exc))
    if isinstance(exc, RowNotFound):
        return error_response(not_found())
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        return error_response(not_found())
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return error_response(method_not_allowed(request.method))
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(server_error())


async def _handle(request: Request, exc: Exception) -> Response:
    return answer(request, exc)


# Failures outside the API's endpoints (paths that match no route, the connect page's wrong methods).
EXCEPTION_HANDLERS = {404: _handle, 405: _handle}
