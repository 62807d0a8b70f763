"""What a handler may read from its request, and how it answers.

The app parses the body and resolves the project before a handler runs (handlers are sync and run
in the thread pool, where `await request.json()` is not possible), and leaves the results on
`request.state`. Handlers read them through these accessors only.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warehouse_mcp.embedded.domain.errors import Invalid

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend


def backend(request: Request) -> EmbeddedBackend:
    instance: EmbeddedBackend = request.app.state.backend
    return instance


def team_id(request: Request) -> int:
    """The project (team) id of the URL: `@current` is project 1."""
    return int(request.state.team_id)


def body(request: Request) -> dict[str, Any]:
    """The JSON object sent (an empty body reads as `{}`)."""
    data = getattr(request.state, "body", None)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Invalid(f"Invalid data. Expected a dictionary, but got {type(data).__name__}.", None, "invalid")
    return data


def path_id(request: Request) -> str:
    """The `{id}` of the path; a UUID in any spelling reads as its canonical lower-case form."""
    raw = str(request.path_params["id"])
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw


def json_response(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def empty_response(status: int = 200) -> Response:
    return Response(status_code=status)


DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**62  # SQLite integers are 64-bit: a larger offset is simply past the end


def page_params(request: Request) -> tuple[int, int]:
    """`(limit, offset)` as DRF's LimitOffsetPagination reads them: bad values fall back to the defaults."""
    limit = _positive_int(request.query_params.get("limit")) or DEFAULT_PAGE_SIZE
    offset = _positive_int(request.query_params.get("offset")) or 0
    return min(limit, MAX_PAGE_SIZE), min(offset, MAX_OFFSET)


def paginated(request: Request, count: int, results: list[Any], limit: int, offset: int) -> Response:
    """`{count, next, previous, results}` with absolute page links, as PostHog lists answer."""
    url = request.url
    next_url = None
    if offset + limit < count:
        next_url = str(url.include_query_params(limit=limit, offset=offset + limit))
    previous_url = None
    if offset > 0:
        if offset - limit <= 0:
            previous_url = str(url.include_query_params(limit=limit).remove_query_params("offset"))
        else:
            previous_url = str(url.include_query_params(limit=limit, offset=offset - limit))
    return json_response({"count": count, "next": next_url, "previous": previous_url, "results": results})


def _positive_int(raw: str | None) -> int | None:
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None
