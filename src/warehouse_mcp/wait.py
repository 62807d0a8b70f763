"""data-warehouse-sync-wait: poll a source's jobs until its running syncs finish, reporting progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .operations import Args, Operation

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime


async def wait_for_sync(op: Operation, args: Args, ctx: Context, runtime: Runtime) -> Any:
    raise NotImplementedError
