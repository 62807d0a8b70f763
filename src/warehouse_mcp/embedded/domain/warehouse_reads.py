"""Reading the synced tables (embedded only, not part of PostHog's API; the handlers are http.warehouse_api).

The tables are listed with the schema and source each comes from; a query is one read-only SQL statement
over them (sync/query.py enforces read-only, caps and timeout). Reading needs no warehouse lock.

sync.query and sync.warehouse load DuckDB: imported on use, not when the app is built, so that a server
answers tools/list without loading it (tests/mcp/test_cold_start.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.request_bodies import WarehouseQuery
from warehouse_mcp.embedded.store import Store, schema_records


def tables(store: Store, team_id: int, home: Path) -> list[dict[str, Any]]:
    """Each synced table (name, row count, columns) with the schema, source and time it was synced from."""
    from warehouse_mcp.embedded.sync import query
    from warehouse_mcp.embedded.sync.warehouse import WAREHOUSE_FILE

    origins = schema_records.synced_tables(store, team_id)
    results: list[dict[str, Any]] = []
    for table in query.tables(home / WAREHOUSE_FILE):
        origin = origins.get(table["name"])
        if origin is not None:
            table |= {
                "schema_id": origin.id,
                "source_id": origin.source_id,
                "source_type": origin.source_type,
                "source_table": origin.name,
                "last_synced_at": origin.last_synced_at,
            }
        results.append(table)
    return results


def run(home: Path, body: WarehouseQuery) -> dict[str, Any]:
    """`{columns, rows, row_count, _truncated}` of one read-only statement."""
    from warehouse_mcp.embedded.sync import query
    from warehouse_mcp.embedded.sync.warehouse import WAREHOUSE_FILE

    try:
        return query.run_query(home / WAREHOUSE_FILE, body.sql)
    except query.QueryError as exc:
        raise Refused(str(exc)) from None
