"""Steps shared by the end-to-end flows: the embedded settings, a tool call that must succeed (and never
carry the canary), the connect page, setup and its first syncs, a small shop to sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client

from tests.conftest import CANARY_PASSWORD, Database
from warehouse_mcp.harness import complete_connect_page
from warehouse_mcp.settings import Settings


def embedded(home: Path, **extra: Any) -> Settings:
    return Settings(backend="embedded", home=home, **extra)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content[0].text)
    assert CANARY_PASSWORD not in result.model_dump_json()
    return result.structured_content or {}


async def set_up_and_sync(
    client: Client, source_type: str, payload: dict[str, Any], timeout: int = 60
) -> dict[str, Any]:
    """data-warehouse-source-setup with `payload`, then wait until its first syncs ended; the created source."""
    created = await call(
        client, "data-warehouse-source-setup", {"source_type": source_type, "payload": payload}
    )
    waited = await call(
        client, "data-warehouse-sync-wait", {"source_id": created["id"], "timeout_seconds": timeout}
    )
    assert waited["done"], waited
    return created


def seed_shop(db: Database) -> None:
    if db.kind == "postgres":
        db.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
            "CREATE TABLE events (name text, happened date)",
            "INSERT INTO customers (email) SELECT 'u' || i || '@x.io' FROM generate_series(1, 25) i",
            "INSERT INTO events VALUES ('a', '2026-01-01'), ('b', NULL)",
        )
    else:
        db.execute(
            "CREATE TABLE customers (id int PRIMARY KEY AUTO_INCREMENT, email varchar(200) NOT NULL, updated_at datetime NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            "CREATE TABLE events (name varchar(10), happened date)",
            "INSERT INTO customers (email) VALUES " + ",".join(f"('u{i}@x.io')" for i in range(1, 26)),
            "INSERT INTO events VALUES ('a', '2026-01-01'), ('b', NULL)",
        )


async def connect(client: Client, source_type: str, db: Database) -> str:
    link = await call(client, "data-warehouse-source-connect-link", {"source_type": source_type})
    assert link["status"] == "waiting_for_user"
    fields = {key: value for key, value in db.config.items()}
    credential_id = complete_connect_page(link["connect_url"], fields)
    stored = await call(client, "data-warehouse-stored-credentials-list", {"source_type": source_type})
    assert stored["results"][0]["credential_id"] == credential_id
    return credential_id
