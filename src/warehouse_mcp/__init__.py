"""warehouse-mcp: an MCP server for data-warehouse imports (PostHog External Data API)."""

__version__ = "0.1.0"
