"""MCP-side benchmarks for tools/bench.py: start-up, context cost, call overhead, harness sessions.

Every figure is measured beside its baseline in the same run (a minimal MCP server with one tool on the
same SDK is the floor for a Python MCP server), and reported as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

BIN = str(Path(sys.executable).with_name("warehouse-mcp"))

MINIMAL_SERVER = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer
    server = MCPServer("minimal")

    @server.tool()
    def ping(value: str) -> dict[str, str]:
        return {"value": value}

    server.run()
    """
)


def _minimal_server_file(folder: Path) -> Path:
    path = folder / "minimal_server.py"
    path.write_text(MINIMAL_SERVER)
    return path


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


# --- 1. cold start ------------------------------------------------------------------------------------


async def _time_to_tools(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
    return time.perf_counter() - started


def bench_startup(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        minimal = StdioServerParameters(command=sys.executable, args=[str(_minimal_server_file(Path(tmp)))])
        ours = StdioServerParameters(
            command=BIN, args=[], env={"PATH": os.environ["PATH"], "WAREHOUSE_MCP_EPHEMERAL": "1"}
        )

        async def run() -> tuple[list[float], list[float]]:
            base, mine = [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both alike
                base.append(await _time_to_tools(minimal))
                mine.append(await _time_to_tools(ours))
            return base, mine

        base, mine = anyio.run(run)
    b, m = statistics.median(base), statistics.median(mine)
    _print(
        [
            ("launch → tools/list, minimal one-tool server (median)", f"{b * 1000:.0f} ms"),
            ("launch → tools/list, warehouse-mcp embedded (median)", f"{m * 1000:.0f} ms"),
            ("ratio", f"{m / b:.2f}x"),
        ]
    )
    return 0


# --- 2. context cost ----------------------------------------------------------------------------------


BUDGET_TOKENS = {
    "all": 8_000,
    "discovery": 1_500,
}  # issue 15; tests/mcp/test_context_budget.py checks them too


def _tool_sizes(toolsets: tuple[str, ...] | None, mode: str = "all") -> list[tuple[str, int]]:
    from warehouse_mcp.server import build_server
    from warehouse_mcp.settings import TOOLSETS, Settings

    settings = Settings(backend="embedded", toolsets=toolsets or TOOLSETS, tool_mode=mode)  # type: ignore[arg-type]
    server = build_server(settings)

    async def listing() -> list[Any]:
        return await server.list_tools()

    tools = anyio.run(listing)
    return [(tool.name, len(tool.model_dump_json(by_alias=True, exclude_none=True))) for tool in tools]


def bench_context(args: argparse.Namespace) -> int:
    from warehouse_mcp.settings import TOOLSETS

    sizes = _tool_sizes(None)
    total = sum(size for _, size in sizes)
    rows = [
        (f"  {name}", f"{size:,} B  ~{size // 4:,} tok") for name, size in sorted(sizes, key=lambda x: -x[1])
    ]
    print("tools/list per tool (characters of the tool's JSON; tokens ≈ characters / 4):")
    _print(rows)
    print()
    discovery = _tool_sizes(None, "discovery")
    discovery_total = sum(size for _, size in discovery)
    summary = [
        (
            "all toolsets (default)",
            f"{len(sizes)} tools, {total:,} B  ~{total // 4:,} tok  (budget {BUDGET_TOKENS['all']:,})",
        ),
        (
            "discovery mode",
            f"{len(discovery)} tools, {discovery_total:,} B  ~{discovery_total // 4:,} tok  "
            f"(budget {BUDGET_TOKENS['discovery']:,})",
        ),
    ]
    for toolset in TOOLSETS:
        part = _tool_sizes((toolset,))
        size = sum(s for _, s in part)
        summary.append((f"toolset {toolset}", f"{len(part)} tools, {size:,} B  ~{size // 4:,} tok"))
    _print(summary)
    over = [
        mode
        for mode, characters in (("all", total), ("discovery", discovery_total))
        if characters / 4 > BUDGET_TOKENS[mode]
    ]
    for mode in over:
        print(f"OVER BUDGET: {mode}", file=sys.stderr)
    return 1 if over else 0


# --- 3. call overhead ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _timed_calls(call: Callable[[], Awaitable[Any]], count: int) -> tuple[list[float], float]:
    samples = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples, time.perf_counter() - started


def bench_calls(args: argparse.Namespace) -> int:
    from bench_sync import scratch_database
    from warehouse_mcp.harness import complete_connect_page, harness_settings
    from warehouse_mcp.server import build_server

    count = args.calls
    results: dict[str, tuple[list[float], float]] = {}
    with scratch_database() as database, tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        import psycopg

        with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        settings = harness_settings(home=Path(tmp) / "home", run_scheduler=False)
        fields = {
            "host": "127.0.0.1",
            "port": "5432",
            "database": database,
            "user": "postgres",
            "password": "trust",
        }

        async def in_process() -> str:
            server = build_server(settings)
            async with Client(server) as client:
                link = await client.call_tool(
                    "data-warehouse-source-connect-link", {"source_type": "Postgres"}
                )
                url = (link.structured_content or {})["connect_url"]
                credential = await anyio.to_thread.run_sync(lambda: complete_connect_page(url, fields))
                made = await client.call_tool(
                    "data-warehouse-source-setup",
                    {"source_type": "Postgres", "payload": {"credential_id": credential}},
                )
                source_id = (made.structured_content or {})["id"]

                async def retrieve() -> None:
                    result = await client.call_tool("external-data-sources-retrieve", {"id": source_id})
                    assert not result.is_error

                await retrieve()
                results["in-process (embedded)"] = await _timed_calls(retrieve, count)
                return source_id

        source_id = anyio.run(in_process)

        # The same data dir served by the installed command over streamable HTTP, as a client would meet it.
        port = _free_port()
        env = {"PATH": os.environ["PATH"], "WAREHOUSE_MCP_HOME": str(settings.home)}
        http = subprocess.Popen([BIN, "--transport", "http", "--port", str(port)], env=env)
        try:
            _wait_for_port(port)

            async def over_http() -> None:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:

                    async def retrieve() -> None:
                        result = await client.call_tool("external-data-sources-retrieve", {"id": source_id})
                        assert not result.is_error

                    await retrieve()
                    results["streamable HTTP (embedded, separate process)"] = await _timed_calls(
                        retrieve, count
                    )

            anyio.run(over_http)
        finally:
            http.terminate()
            http.wait(15)

    with tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        from mcp.server.mcpserver import MCPServer

        minimal = MCPServer("minimal")

        @minimal.tool()
        def ping(value: str) -> dict[str, str]:
            return {"value": value}

        async def floor() -> None:
            async with Client(minimal) as client:
                results["floor: minimal one-tool server, in-process"] = await _timed_calls(
                    lambda: client.call_tool("ping", {"value": "x"}), count
                )

        anyio.run(floor)

    floor_p50 = _percentiles(results["floor: minimal one-tool server, in-process"][0])[0]
    rows = []
    for name, (samples, seconds) in results.items():
        p50, p99 = _percentiles(samples)
        rows.append(
            (
                f"{count} × retrieve, {name}" if "floor" not in name else f"{count} × ping, {name}",
                f"p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  {count / seconds:,.0f} calls/s  "
                f"p50 = {p50 / floor_p50:.1f}x floor",
            )
        )
    _print(rows)
    return 0


# --- issue 8: fresh-server harness sessions -----------------------------------------------------------


def bench_sessions(args: argparse.Namespace) -> int:
    from bench_sync import scratch_database
    from warehouse_mcp.harness import harness_settings
    from warehouse_mcp.server import build_server

    with scratch_database() as database:
        import psycopg

        with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE items (id int PRIMARY KEY, name text, updated_at timestamptz DEFAULT now())"
            )
            conn.execute("INSERT INTO items (id, name) SELECT g, 'n' || g FROM generate_series(1, 100) g")
        payload = {
            "host": "127.0.0.1",
            "port": 5432,
            "database": database,
            "user": "postgres",
            "password": "trust",
        }

        async def one_session() -> None:
            server = build_server(harness_settings())  # ephemeral: fresh data dir, removed afterwards
            async with Client(server) as client:
                stored = await client.call_tool(
                    "external-data-sources-store-credentials-create",
                    {"source_type": "Postgres", "payload": payload},
                )
                credential = (stored.structured_content or {})["credential_id"]
                made = await client.call_tool(
                    "data-warehouse-source-setup",
                    {"source_type": "Postgres", "payload": {"credential_id": credential}},
                )
                source_id = (made.structured_content or {})["id"]
                waited = await client.call_tool(
                    "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}
                )
                done = waited.structured_content or {}
                if not done.get("done") or done.get("rows_synced") != 100:
                    raise RuntimeError(f"session did not sync: {json.dumps(done)[:300]}")

        async def run() -> list[float]:
            times = []
            for _ in range(args.sessions):
                started = time.perf_counter()
                await one_session()
                times.append(time.perf_counter() - started)
            return times

        times = anyio.run(run)
    _print(
        [
            (f"{len(times)} sequential fresh-server sessions", f"total {sum(times):.1f} s"),
            (
                "per session (create, setup, sync 100 rows, tear down)",
                f"median {statistics.median(times) * 1000:.0f} ms  max {max(times) * 1000:.0f} ms",
            ),
        ]
    )
    return 0


def add_commands(commands: Any) -> None:
    startup = commands.add_parser(
        "startup", help="launch → tools/list over stdio, vs. a minimal one-tool server"
    )
    startup.add_argument("--repeat", type=int, default=5)
    startup.set_defaults(run=bench_startup)
    context = commands.add_parser("context", help="size of the tools/list answer, per tool and per toolset")
    context.set_defaults(run=bench_context)
    calls = commands.add_parser(
        "calls", help="retrieve latency in process and over HTTP, vs. a minimal server"
    )
    calls.add_argument("--calls", type=int, default=1000)
    calls.set_defaults(run=bench_calls)
    sessions = commands.add_parser("sessions", help="sequential fresh-server harness sessions")
    sessions.add_argument("--sessions", type=int, default=50)
    sessions.set_defaults(run=bench_sessions)
