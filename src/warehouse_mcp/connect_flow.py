"""The secret-free connect flow: connect link (and URL elicitation), and setup from a stored credential."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .http_call import send
from .operations import Args, Operation

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime


async def connect_or_setup(op: Operation, args: Args, ctx: Context, runtime: Runtime) -> Any:
    return await send(op, args, runtime)
