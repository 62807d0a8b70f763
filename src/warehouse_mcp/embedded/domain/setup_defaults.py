"""The `schemas` array `setup` builds so the caller never has to (api-semantics §4 setup).

Every discovered table is enabled: `incremental` when the table supports it, has a cursor
candidate and a primary key (incremental runs merge changed rows on it), else `append` when
supported (it needs a cursor too, but no key), else `full_refresh`. `cdc` only when asked (`cdc=True`, after
the prerequisites passed), for every table with a primary key. Webhook-only tables start disabled; setup
switches them on if it manages to register the source's webhook.
"""

from __future__ import annotations

from typing import Any

from warehouse_mcp.embedded.connectors.base import IncrementalCandidate, TableInfo
from warehouse_mcp.models import INCREMENTAL_FIELD_PREFERENCE


def cursor_field(candidates: list[IncrementalCandidate]) -> IncrementalCandidate | None:
    """The preferred update-tracking column (by name, case-insensitive), else the first candidate."""
    usable = [candidate for candidate in candidates if candidate.field]
    by_name = {candidate.field.lower(): candidate for candidate in usable}
    for name in INCREMENTAL_FIELD_PREFERENCE:
        if name in by_name:
            return by_name[name]
    return usable[0] if usable else None


def default_schemas(tables: list[TableInfo], *, cdc: bool = False) -> list[dict[str, Any]]:
    schemas: list[dict[str, Any]] = []
    for table in tables:
        if table.webhook_only:
            schemas.append({"name": table.name, "should_sync": False})
            continue
        if cdc and table.cdc_available and table.primary_keys:
            schemas.append(
                {
                    "name": table.name,
                    "should_sync": True,
                    "sync_type": "cdc",
                    "primary_key_columns": list(table.primary_keys),
                }
            )
            continue
        chosen = cursor_field(table.incremental_fields)
        if chosen is not None and table.supports_incremental and table.primary_keys:
            sync_type = "incremental"
        elif chosen is not None and table.supports_append:
            sync_type = "append"
        else:
            sync_type = "full_refresh"
        entry: dict[str, Any] = {"name": table.name, "should_sync": True, "sync_type": sync_type}
        if chosen is not None and sync_type != "full_refresh":
            entry["incremental_field"] = chosen.field
            entry["incremental_field_type"] = chosen.field_type
        if table.primary_keys:
            entry["primary_key_columns"] = list(table.primary_keys)
        schemas.append(entry)
    return schemas
