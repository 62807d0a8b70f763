"""data-warehouse-query and data-warehouse-tables-list: the embedded backend's local warehouse, read-only.

They call the embedded API's `warehouse/` paths (served by the embedded backend and by a
`warehouse-mcp serve-api` daemon). PostHog has no such paths: its own query tools read its warehouse, and
the answer says so instead of a bare 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.types import CallToolResult, TextContent

from .client import ApiError
from .operation_requests import send
from .operations import Args, Operation

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime

ON_POSTHOG = (
    "{tool} reads the local warehouse of warehouse-mcp's embedded backend. This server talks to PostHog, "
    "which keeps the synced tables in its own data warehouse: query them with PostHog's own tools (its MCP "
    "server's SQL/HogQL query tool, or the SQL editor under Data warehouse in PostHog)."
)


async def read_local_warehouse(
    op: Operation, args: Args, ctx: Context, runtime: Runtime
) -> dict[str, Any] | CallToolResult:
    try:
        return await send(op, args, runtime)
    except ApiError as exc:
        if runtime.settings.backend == "posthog" and exc.status in (404, 405):
            text = ON_POSTHOG.format(tool=op.tool)
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        raise
