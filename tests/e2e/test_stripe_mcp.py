"""Stripe through the MCP tools: setup registers the webhook, tables backfill, and every webhook tool answers
its documented shape and messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.fakes.stripe_server import DEFAULT_KEY, FakeStripe
from warehouse_mcp.embedded.connectors.stripe import API_BASE_ENV, TABLES
from warehouse_mcp.harness import build_server, harness_settings

pytestmark = pytest.mark.anyio
WEBHOOK_TABLES = sorted(name for name, table in TABLES.items() if table.events)


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        monkeypatch.setenv(API_BASE_ENV, fake.url)
        for n in range(3):
            fake.add("customers", email=f"c{n}@example.com")
        fake.add("charges", amount=1500, currency="usd", paid=True)
        fake.add("invoices", total=1500, status="paid")
        yield fake


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content[0].text)
    text = result.model_dump_json()
    assert DEFAULT_KEY not in text and "whsec_" not in text
    return result.structured_content or {}


async def error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    return result.content[0].text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stripe_webhook_tools_through_mcp(stripe: FakeStripe, tmp_path: Path, mode: str) -> None:
    server = build_server(harness_settings(home=tmp_path / "home"))
    async with Client(server, mode=mode) as client:
        stored = await ok(
            client,
            "external-data-sources-store-credentials-create",
            {
                "source_type": "Stripe",
                "payload": {"auth_method": "api_key", "stripe_secret_key": DEFAULT_KEY},
            },
        )
        source = await ok(
            client,
            "data-warehouse-source-setup",
            {"source_type": "Stripe", "payload": {"credential_id": stored["credential_id"]}},
        )
        assert source["webhook"]["success"] is True and source["webhook"]["webhook_url"].endswith(
            f"/webhooks/stripe/{source['id']}/"
        )
        assert source["revenue_analytics_config"] == {"enabled": True, "include_invoiceless_charges": True}
        schemas = {schema["name"]: schema for schema in source["schemas"]}
        assert {name for name, schema in schemas.items() if schema["sync_type"] == "webhook"} == set(
            WEBHOOK_TABLES
        )

        waited = await ok(
            client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 60}
        )
        assert waited["done"], waited
        source = await ok(client, "external-data-sources-retrieve", {"id": source["id"]})
        rows = {schema["name"]: (schema["table"] or {}).get("row_count") for schema in source["schemas"]}
        assert rows["Customer"] == 3 and rows["Charge"] == 1  # webhook tables got their backfill

        info = await ok(client, "external-data-sources-webhook-info-retrieve", {"id": source["id"]})
        assert info["supports_webhooks"] is True and info["exists"] is True
        assert set(info) >= {"webhook_url", "schema_mapping", "external_status"}

        assert "No inputs provided" in await error(
            client, "external-data-sources-update-webhook-inputs-create", {"id": source["id"], "inputs": {}}
        )
        assert "Invalid input keys" in await error(
            client,
            "external-data-sources-update-webhook-inputs-create",
            {"id": source["id"], "inputs": {"colour": "red"}},
        )
        updated = await ok(
            client,
            "external-data-sources-update-webhook-inputs-create",
            {"id": source["id"], "inputs": {"signing_secret": "whsec_rotated0123456789"}},
        )
        assert updated == {"success": True}

        refused = await error(client, "external-data-sources-delete-webhook-create", {"id": source["id"]})
        assert "Cannot delete webhook while tables are using webhook sync" in refused
        webhook_ids = [schemas[name]["id"] for name in WEBHOOK_TABLES]
        await ok(
            client,
            "external-data-sources-bulk-update-schemas-partial-update",
            {"id": source["id"], "schemas": [{"id": sid, "should_sync": False} for sid in webhook_ids]},
        )
        deleted = await ok(client, "external-data-sources-delete-webhook-create", {"id": source["id"]})
        assert deleted["success"] is True and set(deleted) >= {"external_deleted", "error"}
        assert "No webhook function found" in await error(
            client,
            "external-data-sources-update-webhook-inputs-create",
            {"id": source["id"], "inputs": {"signing_secret": "whsec_x0123456789"}},
        )

        created = await ok(client, "external-data-sources-create-webhook-create", {"id": source["id"]})
        assert created["success"] is True and set(created) >= {"webhook_url", "error", "pending_inputs"}
        calls = [(r.method, r.path) for r in stripe.requests if r.path.startswith("/v1/webhook_endpoints")]
        assert [method for method, _ in calls if method != "GET"] == [
            "POST",
            "DELETE",
            "POST",
        ]  # setup, delete, create


async def test_webhook_tools_on_a_source_without_webhooks(postgres_db: Any, tmp_path: Path) -> None:
    postgres_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    server = build_server(harness_settings(home=tmp_path / "home", run_scheduler=False))
    async with Client(server) as client:
        stored = await ok(
            client,
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": postgres_db.config},
        )
        source = await ok(
            client,
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
        )
        info = await ok(client, "external-data-sources-webhook-info-retrieve", {"id": source["id"]})
        assert info == {
            "supports_webhooks": False,
            "exists": False,
            "webhook_url": None,
            "schema_mapping": {},
            "external_status": None,
        }
        for tool in (
            "external-data-sources-create-webhook-create",
            "external-data-sources-delete-webhook-create",
        ):
            assert "This source type does not support webhooks" in await error(
                client, tool, {"id": source["id"]}
            )
