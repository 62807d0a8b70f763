"""PostHog's error messages, provoked through the MCP tools on the embedded backend (real Postgres)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.conftest import Database
from warehouse_mcp.harness import build_server, harness_settings

pytestmark = pytest.mark.anyio


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content[0].text)
    return result.structured_content or {}


async def test_error_messages_reach_the_model(postgres_db: Database, tmp_path: Path) -> None:
    postgres_db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text, updated_at timestamptz)",
        "CREATE TABLE logs (line text)",
    )
    config = postgres_db.config
    server = build_server(harness_settings(home=tmp_path / "home", run_scheduler=False))
    async with Client(server) as client:
        stored = await ok(
            client,
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": config},
        )
        source = await ok(
            client,
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
        )
        schemas = {schema["name"]: schema["id"] for schema in source["schemas"]}

        async def expect(tool: str, arguments: dict[str, Any], message: str) -> None:
            result = await client.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
            assert message in result.content[0].text, result.content[0].text

        create = "external-data-sources-create"
        await expect(
            create,
            {"source_type": "Postgres", "payload": {**config, "schemas": []}},
            "Source type already exists. Prefix is required",
        )
        await expect(
            create,
            {"source_type": "Postgres", "prefix": "___", "payload": {**config, "schemas": []}},
            "Prefix cannot consist of only underscores",
        )
        await expect(
            create,
            {"source_type": "Postgres", "prefix": "9lives", "payload": {**config, "schemas": []}},
            "Prefix must contain only letters, numbers, and underscores",
        )
        await expect(
            create,
            {
                "source_type": "Postgres",
                "prefix": "b",
                "payload": {**config, "schemas": [{"name": "nope", "should_sync": True}]},
            },
            "Schemas given do not exist in source",
        )
        await expect(
            create,
            {
                "source_type": "Postgres",
                "prefix": "c",
                "payload": {
                    **config,
                    "schemas": [{"name": "users", "should_sync": True, "sync_type": "incremental"}],
                },
            },
            "Incremental schemas given do not have an incremental field set",
        )
        await expect(
            create,
            {
                "source_type": "Postgres",
                "prefix": "d",
                "payload": {
                    **config,
                    "password": "wrong-password",
                    "schemas": [{"name": "users", "should_sync": True}],
                },
            },
            "Invalid credentials",
        )
        await expect(
            create,
            {"source_type": "MySQL", "access_method": "direct", "payload": {"schemas": []}, "prefix": "e"},
            "Required field",
        )
        await expect(
            create,
            {"source_type": "Stripe", "access_method": "direct", "payload": {"schemas": []}},
            "Direct query mode is currently supported only for Postgres and MySQL sources.",
        )
        await expect(create, {"source_type": "Zendesk", "payload": {"schemas": []}}, "PostHog backend")
        await expect(
            "external-data-sources-source-prefix-create",
            {"source_type": "Postgres"},
            "Source type already exists. Prefix is required",
        )
        await expect(
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": "missing"}},
            "Stored credential 'missing' not found or expired",
        )
        await expect(
            "external-data-sources-partial-update",
            {"id": source["id"], "job_inputs": {"host": "localhost"}},
            "Changing the connection host requires re-entering your credentials.",
        )

        update = "external-data-schemas-partial-update"
        await expect(
            update,
            {"id": schemas["logs"], "sync_frequency": "1min"},
            "A 1-minute sync frequency is only available for CDC schemas.",
        )
        await expect(update, {"id": schemas["logs"], "sync_time_of_day": "25:99"}, "Invalid sync time of day")
        await expect(update, {"id": schemas["users"], "sync_type": "cdc"}, "CDC")
        await expect(
            update,
            {"id": schemas["users"], "enabled_columns": ["email", "ghost"]},
            "Unknown columns in enabled_columns",
        )
        # Setup asked for a sync that no scheduler started: the first cancel settles it, the next has nothing.
        settled = await ok(client, "external-data-schemas-cancel-create", {"id": schemas["users"]})
        assert settled == {"detail": "No sync was running. The sync status has been updated."}
        await expect(
            "external-data-schemas-cancel-create", {"id": schemas["users"]}, "No running sync to cancel."
        )
        await expect(
            "external-data-sources-bulk-update-schemas-partial-update",
            {"id": source["id"], "schemas": [{"id": schemas["users"]}, {"id": schemas["users"]}]},
            "Schema updates must contain unique ids",
        )
        await expect(
            "external-data-sources-bulk-update-schemas-partial-update",
            {"id": source["id"], "schemas": [{"id": "00000000-0000-0000-0000-000000000000"}]},
            "One or more schemas could not be found for this source",
        )
        await expect(
            "external-data-sources-check-cdc-prerequisites-create",
            {"source_type": "MySQL", "config": {"host": "x"}},
            "CDC prerequisite checks are only supported for Postgres.",
        )
        await expect("data-warehouse-source-connect-link", {"source_type": "Hubspot"}, "Hubspot")
        await expect(
            "external-data-sources-retrieve", {"id": "00000000-0000-0000-0000-000000000000"}, "Not found"
        )
