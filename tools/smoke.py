"""Drive the installed `warehouse-mcp` over stdio the way an agent would, and print what it sees.

    python tools/smoke.py                      # tools, resources, a connect link (embedded, throwaway data dir)
    python tools/smoke.py --postgres "host=127.0.0.1 user=postgres dbname=test password=x"
                                               # also: connect page over HTTP → setup → wait → jobs

Exits non-zero when a step fails, so it doubles as a quick check after an install.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from warehouse_mcp.harness import complete_connect_page

BIN = str(Path(sys.executable).with_name("warehouse-mcp"))


class SmokeFailed(Exception):
    pass


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    first_line = result.content[0].text.splitlines()[0] if result.content else ""
    print(f"{'ERROR' if result.is_error else 'ok   '} {tool}: {first_line}")
    if result.is_error:
        raise SmokeFailed(tool)
    return result.structured_content or {}


async def smoke(postgres: str | None) -> None:
    env = {"PATH": os.environ["PATH"], "WAREHOUSE_MCP_EPHEMERAL": "1"}
    async with Client(StdioServerParameters(command=BIN, args=[], env=env)) as client:
        tools = (await client.list_tools()).tools
        print(f"ok    {len(tools)} tools listed")
        guide = await client.read_resource("warehouse://guides/connect-flow")
        print(f"ok    connect guide: {len(guide.contents[0].text)} characters")  # type: ignore[union-attr]
        link = await call(client, "data-warehouse-source-connect-link", {"source_type": "Postgres"})
        if not postgres:
            print(f"      the user would open: {link['connect_url']}")
            return
        fields = dict(part.split("=", 1) for part in postgres.split())
        fields = {
            "host": fields.get("host", "127.0.0.1"),
            "port": fields.get("port", "5432"),
            "database": fields.get("dbname", "postgres"),
            "user": fields.get("user", "postgres"),
            "password": fields.get("password", ""),
            "schema": fields.get("schema", "public"),
        }
        credential = await anyio.to_thread.run_sync(
            lambda: complete_connect_page(link["connect_url"], fields)
        )
        print(f"ok    connect page completed: credential {credential}")
        source = await call(
            client,
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": credential}},
        )
        waited = await call(
            client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 300}
        )
        print(f"      {waited['tables_done']}/{waited['tables_total']} tables, {waited['rows_synced']} rows")
        await call(client, "external-data-sources-jobs-retrieve", {"id": source["id"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="libpq-style 'key=value ...' of a database to connect and sync")
    args = parser.parse_args()
    failed = False
    try:
        anyio.run(smoke, args.postgres)
    except* SmokeFailed:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
