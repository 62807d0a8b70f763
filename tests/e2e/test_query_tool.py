"""data-warehouse-tables-list and data-warehouse-query through the MCP client, after a real sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import Database
from tests.e2e.flow_support import call, connect, embedded, seed_shop, set_up_and_sync
from warehouse_mcp.server import build_server


@pytest.mark.anyio
async def test_an_agent_lists_and_queries_what_it_synced(postgres_db: Database, home: Path) -> None:
    seed_shop(postgres_db)
    async with Client(build_server(embedded(home))) as client:
        credential_id = await connect(client, "Postgres", postgres_db)
        created = await set_up_and_sync(client, "Postgres", {"credential_id": credential_id})

        listed = await call(client, "data-warehouse-tables-list", {})
        by_name = {table["name"]: table for table in listed["results"]}
        assert set(by_name) == {"postgres_customers", "postgres_events"}
        customers = by_name["postgres_customers"]
        assert customers["row_count"] == 25 and customers["source_table"] == "customers"
        assert customers["source_id"] == created["id"]
        assert [(c["name"], c["type"]) for c in customers["columns"]] == [
            ("id", "INTEGER"),
            ("email", "VARCHAR"),
            ("updated_at", "TIMESTAMP WITH TIME ZONE"),
        ]

        result = await client.call_tool(
            "data-warehouse-query",
            {"sql": "SELECT id, email FROM postgres_customers WHERE id <= 3 ORDER BY id"},
        )
        assert not result.is_error, result.content[0].text
        source = postgres_db.fetch("SELECT id, email FROM customers WHERE id <= 3 ORDER BY id")
        assert result.structured_content == {
            "columns": ["id", "email"],
            "rows": [list(row) for row in source],
            "row_count": 3,
            "_truncated": False,
        }
        text = result.content[0].text
        assert "<untrusted-data-" in text and "u1@x.io" in text.split("<untrusted-data-", 1)[1]

        capped = await call(client, "data-warehouse-query", {"sql": "SELECT * FROM range(100000)"})
        assert capped["_truncated"] is True and capped["row_count"] == 200

        refused = await client.call_tool("data-warehouse-query", {"sql": "DROP VIEW postgres_customers"})
        assert refused.is_error and "Only read queries run here" in refused.content[0].text
        still = await call(client, "data-warehouse-query", {"sql": "SELECT count(*) FROM postgres_customers"})
        assert still["rows"] == [[25]]

        # A second server on the same data directory (the first holds the warehouse lock) reads the same tables.
        async with Client(build_server(embedded(home))) as other:
            again = await call(
                other, "data-warehouse-query", {"sql": "SELECT max(id) FROM postgres_customers"}
            )
            assert again["rows"] == [[25]]
            assert {
                t["name"] for t in (await call(other, "data-warehouse-tables-list", {}))["results"]
            } == set(by_name)


@pytest.mark.anyio
async def test_the_query_tools_are_in_the_read_only_toolset(home: Path) -> None:
    async with Client(build_server(embedded(home, read_only=True))) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"data-warehouse-query", "data-warehouse-tables-list"} <= names
        empty = await call(client, "data-warehouse-tables-list", {})
        assert empty["results"] == []
        assert (await call(client, "data-warehouse-query", {"sql": "SELECT 1 AS one"}))["rows"] == [[1]]
        missing = await client.call_tool("data-warehouse-query", {"sql": "SELECT * FROM postgres_nope"})
        text = missing.content[0].text
        assert (
            missing.is_error
            and "postgres_nope does not exist" in text
            and "data-warehouse-tables-list" in text
        )
