"""The one place where failures become HTTP answers, in the two shapes PostHog answers with.

An `ErrorAnswer` carries its status and body (DRF's `{"type", "code", "detail", "attr"}` or a
custom action's `{"message"}`); the store's `RowNotFound` and Starlette's own 404/405 become DRF's not-found and
method-not-allowed; anything else is logged with its traceback and answered as a generic 500,
never with its text (it could quote a source's error).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warehouse_mcp.embedded.domain.errors import ErrorAnswer, method_not_allowed, not_found, server_error
from warehouse_mcp.embedded.store import RowNotFound

logger = logging.getLogger(__name__)


def error_response(error: ErrorAnswer) -> Response:
    return JSONResponse(error.body, status_code=error.status)


def answer(request: Request, exc: Exception) -> Response:
    """The answer to a request that failed with `exc`."""
    if isinstance(exc, ErrorAnswer):
        return error_response(exc)
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
