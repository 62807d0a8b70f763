"""Cold start stays close to a bare MCP server's (README "Performance", `tools/bench.py startup`): answering
`tools/list` imports no database driver, DuckDB or Arrow, and the embedded scheduler waits for a tool call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from warehouse_mcp import runtime
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

# Imported by the MCP SDK itself (a minimal server pays for them too), so not ours to defer.
HEAVY = ("duckdb", "pyarrow", "psycopg", "pymysql", "adbc_driver_manager", "adbc_driver_postgresql", "jinja2")

LIST_TOOLS_IN_A_FRESH_PROCESS = """
import json, sys, anyio
from mcp import Client
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

async def main():
    async with Client(build_server(Settings(backend="embedded", home=sys.argv[1]))) as client:
        await client.list_tools()
        print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))

anyio.run(main)
"""


def test_listing_tools_imports_nothing_heavy(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LIST_TOOLS_IN_A_FRESH_PROCESS, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "mcp" in loaded  # the probe really ran
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.anyio
async def test_the_scheduler_starts_at_the_first_tool_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "SCHEDULER_START_DELAY", 3600)  # only the tool call can start it here
    server = build_server(Settings(backend="embedded", home=tmp_path / "home"))
    async with Client(server) as client:
        await client.list_tools()
        backend = server.runtime.backend  # type: ignore[attr-defined]
        assert backend is not None and not backend._scheduler_running
        result = await client.call_tool("external-data-sources-list", {})
        assert not result.is_error
        with anyio.fail_after(60):
            while not backend._scheduler_running:
                await anyio.sleep(0.05)
