"""How one catalog operation becomes one HTTP request, exactly in the API's documented shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import ApiError, path_segment
from .operations import Args, Operation
from .results import normalize

if TYPE_CHECKING:
    from .runtime import Runtime


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # relative to /api/{family}/{project}/
    params: list[tuple[str, str]]
    body: Any  # None: no body


def build_request(op: Operation, args: Args) -> HttpRequest:
    values = args.model_dump(mode="json", exclude_unset=True)
    values.pop("project_id", None)
    path = op.path
    if "{id}" in path:
        path = path.replace("{id}", path_segment(str(values.pop("id")), "id"))
    params: list[tuple[str, str]] = []
    for name in op.query:
        value = values.pop(name, None)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            params.append((name, _query_value(item)))
    body: Any = None
    if op.method in ("POST", "PATCH", "PUT"):
        if op.flatten:
            flat = values.pop(op.flatten, None) or {}
            values = {**flat, **values}
        body = values
    return HttpRequest(op.method, path, params, body)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def project_of(args: Args, runtime: Runtime) -> str:
    return getattr(args, "project_id", None) or runtime.settings.project


async def send(op: Operation, args: Args, runtime: Runtime, project: str | None = None) -> dict[str, Any]:
    request = build_request(op, args)
    client = runtime.client
    response = await client.request(
        request.method,
        client.project_path(project or project_of(args, runtime), request.path),
        params=request.params or None,
        json=request.body,
        idempotent=op.idempotent,
    )
    data = response.data
    if op.tool == "external-data-sources-wizard-retrieve":
        data = filter_wizard(data, getattr(args, "source_type", None))
    return normalize(op, data, response.status)


def filter_wizard(forms: Any, wanted: str | None) -> Any:
    """Keep only the asked-for source types: the API may ignore the filter, and the whole answer is ~50 KB."""
    if not wanted or not isinstance(forms, dict):
        return forms
    by_lower = {key.lower(): key for key in forms}
    names = [part.strip() for part in wanted.split(",") if part.strip()]
    unknown = [name for name in names if name.lower() not in by_lower]
    if unknown:
        raise ApiError(
            400,
            f"Unknown source type(s): {', '.join(unknown)}. Known types: {', '.join(sorted(forms))}.",
            attr="source_type",
        )
    return {by_lower[name.lower()]: forms[by_lower[name.lower()]] for name in names}
