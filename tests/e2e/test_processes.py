"""The installed command as separate processes: stdio end to end, two processes on one data dir, serve-api."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import CANARY_PASSWORD, Database, free_port
from warehouse_mcp.harness import complete_connect_page

pytestmark = pytest.mark.anyio
BIN = str(Path(sys.executable).with_name("warehouse-mcp"))


def stdio(home: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=BIN,
        args=["--log-level", "DEBUG"],
        env={"PATH": os.environ["PATH"], "WAREHOUSE_MCP_HOME": str(home), **env},
    )


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content[0].text)
    assert CANARY_PASSWORD not in result.model_dump_json()
    return result.structured_content or {}


async def test_stdio_subprocess_end_to_end(postgres_db: Database, home: Path, tmp_path: Path) -> None:
    postgres_db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text)", "INSERT INTO items VALUES (1, 'a'), (2, 'b')"
    )
    errlog = (tmp_path / "stderr.log").open("w+")
    async with Client(stdio_client(stdio(home), errlog=errlog), mode="legacy") as client:
        link = await ok(client, "data-warehouse-source-connect-link", {"source_type": "Postgres"})
        credential = await anyio.to_thread.run_sync(
            lambda: complete_connect_page(link["connect_url"], postgres_db.config)
        )
        source = await ok(
            client,
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": credential}},
        )
        waited = await ok(
            client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 60}
        )
    assert waited["done"] and waited["rows_synced"] == 2
    errlog.seek(0)
    logged = errlog.read()
    assert "warehouse_mcp" in logged  # DEBUG logging really reached stderr
    assert CANARY_PASSWORD not in logged


async def test_two_processes_share_one_data_dir(postgres_db: Database, home: Path) -> None:
    postgres_db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text)", "INSERT INTO items VALUES (1, 'a')"
    )
    env = {"WAREHOUSE_MCP_ALLOW_INLINE_SECRETS": "1"}
    async with Client(stdio(home, **env)) as first, Client(stdio(home, **env)) as second:

        async def create(client: Client, prefix: str) -> str:
            stored = await ok(
                client,
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": postgres_db.config},
            )
            made = await ok(
                client,
                "data-warehouse-source-setup",
                {
                    "source_type": "Postgres",
                    "prefix": prefix,
                    "payload": {"credential_id": stored["credential_id"]},
                },
            )
            return str(made["id"])

        ids: list[str] = []
        async with anyio.create_task_group() as group:
            for index, client in enumerate([first, second] * 3):
                group.start_soon(lambda c=client, i=index: _append(ids, create(c, f"p{i}")))
        # Both see all six, and whichever holds the warehouse runs every sync.
        for client in (first, second):
            listed = await ok(client, "external-data-sources-list", {"limit": 50})
            assert {item["id"] for item in listed["results"]} == set(ids)
        for source_id in ids:
            waited = await ok(
                second, "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}
            )
            assert waited["done"] and waited["rows_synced"] == 1, waited
    with sqlite3.connect(home / "metadata.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def _append(into: list[str], value: Any) -> None:
    into.append(await value)


async def test_serve_api_daemon_serves_mcp_clients(postgres_db: Database, home: Path) -> None:
    postgres_db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    port = free_port()
    daemon = subprocess.Popen(
        [BIN, "serve-api", "--port", str(port), "--home", str(home)],
        stderr=subprocess.PIPE,
        env={"PATH": os.environ["PATH"]},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url, timeout=0.2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (home / "api_token").read_text().strip()
        assert (home / "api_token").stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{url}/api/projects/1/external_data_sources/").status_code == 401
        env = {
            "POSTHOG_HOST": url,
            "POSTHOG_PERSONAL_API_KEY": token,
            "POSTHOG_PROJECT_ID": "1",
            "WAREHOUSE_MCP_ALLOW_INLINE_SECRETS": "1",
        }
        params = StdioServerParameters(command=BIN, args=[], env={"PATH": os.environ["PATH"], **env})
        async with Client(params) as one, Client(params) as two:
            stored = await ok(
                one,
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": postgres_db.config},
            )
            made = await ok(
                one,
                "data-warehouse-source-setup",
                {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            )
            seen = await ok(two, "external-data-sources-retrieve", {"id": made["id"]})
        assert seen["id"] == made["id"]
    finally:
        daemon.terminate()
        daemon.wait(15)
