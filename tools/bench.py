"""Developer benchmarks: `python tools/bench.py <benchmark> [options]`.

    startup   launch → tools/list over stdio, against a minimal one-tool MCP server
    context   size of the tools/list answer per tool and per toolset
    calls     1,000 retrieve calls in process and over streamable HTTP, against a minimal server
    sync      full refresh of a generated 10-column table (Postgres, MySQL/MariaDB) through the real
              engine, against the raw read and dlt + connectorx; peak RSS; `--big-rows` for the 10x check
    sessions  50 sequential fresh-server harness sessions (create, setup, sync, tear down)
    warehouse the readable warehouse: write path vs. DuckDB INSERT, full refresh with and without
              concurrent reader processes, query latency on the synced table
    cdc       Postgres CDC: snapshot, apply rate (changes/s), commit → warehouse latency on reload and at 1min
    all       all of the above

Each benchmark is one function taking the parsed arguments; `main()` only dispatches. They need the
local services (tools/prepare_services.sh) and print a compact table of results.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import bench_cdc
import bench_mcp
import bench_sync
import bench_warehouse
from warehouse_mcp.embedded.sync.engine import DEFAULT_BATCH_ROWS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="benchmark", required=True)

    bench_sync.add_commands(commands)
    bench_mcp.add_commands(commands)
    bench_warehouse.add_commands(commands)
    bench_cdc.add_commands(commands)
    every = commands.add_parser("all", help="every benchmark, one after the other (the README's figures)")
    every.set_defaults(
        run=bench_all,
        rows=1_000_000,
        batch_rows=DEFAULT_BATCH_ROWS,
        repeat=5,
        calls=1000,
        sessions=50,
        source="both",
        big_rows=0,
        no_dlt=False,
        readers=4,
        reader_pause=0.25,
        cdc_rows=100_000,
        changes=100_000,
        minute_samples=2,
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # before any MCP server configures INFO logging
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


def bench_all(args: argparse.Namespace) -> int:
    failed = 0
    for title, run in (
        ("1. cold start", bench_mcp.bench_startup),
        ("2. context cost", bench_mcp.bench_context),
        ("3. call overhead", bench_mcp.bench_calls),
        ("4. sync throughput", bench_sync.bench_sync),
        ("5. harness sessions", bench_mcp.bench_sessions),
        ("6. readable warehouse", bench_warehouse.bench_warehouse),
        ("7. CDC", bench_cdc.bench_cdc),
    ):
        print(f"\n== {title} ==")
        failed |= run(args)
    return failed


if __name__ == "__main__":
    sys.exit(main())
