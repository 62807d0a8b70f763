"""Developer benchmarks: `python tools/bench.py <benchmark> [options]`.

    startup   launch → tools/list over stdio, against a minimal one-tool MCP server
    context   size of the tools/list answer per tool and per toolset
    calls     1,000 retrieve calls in process and over streamable HTTP, against a minimal server
    sync      full and incremental sync of a generated Postgres table through the real engine,
              against the raw read limit (COPY ... TO STDOUT in binary)
    sessions  50 sequential fresh-server harness sessions (create, setup, sync, tear down)
    all       all of the above

Each benchmark is one function taking the parsed arguments; `main()` only dispatches. They need the
local services (tools/prepare_services.sh) and print a compact table of results.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import bench_mcp
from warehouse_mcp.embedded import schema_records, source_records
from warehouse_mcp.embedded.store import Store, utcnow
from warehouse_mcp.embedded.sync import jobs
from warehouse_mcp.embedded.sync.engine import DEFAULT_BATCH_ROWS, JobProgress, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse
from warehouse_mcp.embedded.vault import Vault

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"

BENCH_TABLE = """
CREATE TABLE bench (
    id integer PRIMARY KEY,
    big bigint NOT NULL,
    amount numeric(12,2),
    label text,
    flag boolean,
    updated_at timestamptz NOT NULL,
    day date,
    payload jsonb,
    ref uuid
)
"""
BENCH_ROWS = """
INSERT INTO bench
SELECT g,
       g::bigint * 1000003,
       (g %% 1000000) / 100.0,
       'label-' || g,
       g %% 2 = 0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       date '2020-01-01' + (g %% 3650),
       jsonb_build_object('g', g, 'tag', 'tag-' || (g %% 10), 'nested', jsonb_build_array(g, g * 2)),
       md5(g::text)::uuid
FROM generate_series(1, %s) AS g
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="benchmark", required=True)

    sync = commands.add_parser("sync", help="full + incremental Postgres sync vs. raw binary COPY")
    sync.add_argument(
        "--rows", type=int, default=1_000_000, help="rows in the generated table (default 1,000,000)"
    )
    sync.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per Arrow batch")
    sync.set_defaults(run=bench_sync)
    bench_mcp.add_commands(commands)
    every = commands.add_parser("all", help="every benchmark, one after the other (the README's figures)")
    every.set_defaults(
        run=bench_all, rows=1_000_000, batch_rows=DEFAULT_BATCH_ROWS, repeat=5, calls=1000, sessions=50
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
        ("4. sync throughput", bench_sync),
        ("5. harness sessions", bench_mcp.bench_sessions),
    ):
        print(f"\n== {title} ==")
        failed |= run(args)
    return failed


# --- sync ---------------------------------------------------------------------------------------------


def bench_sync(args: argparse.Namespace) -> int:
    rows = args.rows
    changed = max(1, rows // 100)
    with scratch_database() as database, tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        started = time.perf_counter()
        with _connect(database, autocommit=True) as conn:
            conn.execute(BENCH_TABLE)
            conn.execute(BENCH_ROWS, (rows,))
            conn.execute("ANALYZE bench")
        build_seconds = time.perf_counter() - started

        home = Path(tmp)
        store, vault = Store(home), Vault(home)
        schema_id = _add_postgres_schema(store, vault, database)
        warehouse = Warehouse(home / "warehouse.duckdb")
        engine = SyncEngine(store, vault, warehouse, Clock(), batch_rows=args.batch_rows)
        try:
            rss_before = _peak_rss_mb()
            full = _timed_sync(engine, store, schema_id)
            rss_after = _peak_rss_mb()
            copy_seconds, copy_bytes = _raw_copy(database)

            with _connect(database, autocommit=True) as conn:
                conn.execute(
                    "UPDATE bench SET updated_at = updated_at + interval '1000 days' WHERE id % 100 = 0"
                    if rows >= 100
                    else "UPDATE bench SET updated_at = updated_at + interval '1000 days' WHERE id = 1"
                )
            incremental = _timed_sync(engine, store, schema_id)
            landed = warehouse.row_count("postgres_bench")
        finally:
            warehouse.close()

    full_seconds, full_rows = full
    incremental_seconds, incremental_rows = incremental
    failures = []
    if full_rows != rows or landed != rows:
        failures.append(f"full sync landed {landed} of {rows} rows")
    if incremental_rows != changed:
        failures.append(f"incremental sync read {incremental_rows} rows, expected {changed}")

    _print_table(
        [
            ("rows", f"{rows:,}"),
            ("build table (generate_series)", f"{build_seconds:.2f} s"),
            ("full sync", f"{full_seconds:.2f} s  ({rows / full_seconds:,.0f} rows/s)"),
            ("raw COPY TO STDOUT (binary)", f"{copy_seconds:.2f} s  ({copy_bytes / 1e6:,.0f} MB)"),
            ("sync time / raw copy time", f"{full_seconds / copy_seconds:.1f}x"),
            (
                "peak RSS, ru_maxrss, whole process",
                f"{rss_after:,.0f} MB  (before sync {rss_before:,.0f} MB)",
            ),
            (
                f"incremental sync ({incremental_rows:,} changed)",
                f"{incremental_seconds:.2f} s  = {incremental_seconds / full_seconds:.3f} of full",
            ),
        ]
    )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"wmcp_bench_{uuid.uuid4().hex[:10]}"
    with _connect("postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _connect("postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _connect(database: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=autocommit)


def _add_postgres_schema(store: Store, vault: Vault, database: str) -> str:
    """A Postgres source and an incremental `bench` schema, stored as the API stores them."""
    config = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "password": "", "database": database}
    source_id = str(uuid.uuid4())
    job_inputs, job_inputs_secret = source_records.encode_config(
        vault, "Postgres", {**config, "schema": "public"}
    )
    with store.transaction() as db:
        source_records.insert(
            db,
            source_id=source_id,
            team_id=1,
            source_type="Postgres",
            prefix=None,
            description=None,
            created_via="api",
            access_method="warehouse",
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata={"engine": "duckdb"},
        )
        return schema_records.insert(
            db,
            team_id=1,
            source_id=source_id,
            name="bench",
            table=None,
            should_sync=True,
            sync_type="incremental",
            incremental_field="updated_at",
            incremental_field_type="datetime",
            primary_key_columns=["id"],
        )


def _timed_sync(engine: SyncEngine, store: Store, schema_id: str) -> tuple[float, int]:
    job = jobs.claim(store, schema_id, utcnow())
    assert job is not None
    started = time.perf_counter()
    outcome: JobProgress = engine.run(job)
    seconds = time.perf_counter() - started
    if outcome.status != "Completed":
        raise SystemExit(f"sync {outcome.status}: {outcome.error}")
    return seconds, outcome.rows_synced


def _raw_copy(database: str) -> tuple[float, int]:
    """The read limit: the same table drained as fast as Postgres sends it, decoding nothing."""
    total = 0
    started = time.perf_counter()
    with (
        _connect(database) as conn,
        conn.cursor().copy("COPY (SELECT * FROM bench) TO STDOUT (FORMAT binary)") as copy,
    ):
        for chunk in copy:
            total += len(chunk)
    return time.perf_counter() - started, total


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
