"""Resources and prompts: the source types and their forms, the connect-flow guide, step-by-step plans."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .runtime import Runtime


def register_guide(server: MCPServer, runtime: Runtime) -> None:
    return None
