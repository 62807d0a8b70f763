"""Which sync types the embedded engine can run for a table.

The API refuses anything else when a schema is created or patched (and a run of a stored schema fails with
the same words), so no schema is ever accepted with a sync type that no job runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from warehouse_mcp.embedded.connectors import registry

XMIN_SOURCE_TYPES = registry.types_with(lambda can: can.xmin)


def refusal(
    source_type: str, sync_type: str | None, table: str, primary_keys: Sequence[str] | None
) -> str | None:
    """Why `table` cannot sync with `sync_type`, in PostHog's words; None when it can."""
    if sync_type == "xmin":
        if source_type not in XMIN_SOURCE_TYPES:
            return f"xmin replication is only available for {registry.names(XMIN_SOURCE_TYPES)} sources."
        if not primary_keys:
            return (
                f"xmin replication requires a primary key on table '{table}'. "
                "Provide primary_key_columns or refresh schema discovery to pick one up."
            )
    return None
