"""`bench.py warehouse`: the readable warehouse: its write path, syncs beside readers, query latency.

In ONE run (ratios only mean something within a run on these shared machines):
- the write path alone: `--rows` generated mixed-type rows in Arrow batches staged and published as a table,
  against the same batches INSERTed into a DuckDB table (what the engine did before the Parquet layout);
- a one-row merge (a webhook event) into that table, and the publish of a new catalog version;
- a Postgres full refresh of `--rows` rows through the real engine (its own process), best of `--repeat`,
  without readers and then with `--readers` processes opening warehouse.duckdb afresh and querying it in
  a loop, `--reader-pause` apart (their queries answered, and errors: there must be none);
- query latency on the synced table: data-warehouse-query's engine (a sandboxed connection per query) and a
  plain read-only `duckdb.connect` + query, p50/p95 over a few query shapes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

import bench_sync
from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync.query import run_query
from warehouse_mcp.embedded.sync.warehouse import Warehouse

TABLE = "postgres_bench"
QUERIES = {
    "count": f"SELECT count(*) FROM {TABLE}",
    "group by": f"SELECT flag, count(*), sum(amount), max(updated_at) FROM {TABLE} GROUP BY flag",
    "point lookup": f"SELECT * FROM {TABLE} WHERE id = 777777",
    "top 10": f"SELECT id, label, score FROM {TABLE} ORDER BY score DESC LIMIT 10",
}
READER = r"""
import sys, time, duckdb
path, stop, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
answered = errors = 0
import pathlib
while not pathlib.Path(stop).exists():
    try:
        with duckdb.connect(path, read_only=True) as db:
            names = {n for (n,) in db.execute("SHOW TABLES").fetchall()}
            if "postgres_bench" in names:
                db.execute("SELECT count(*), sum(amount) FROM postgres_bench").fetchone()
        answered += 1
        time.sleep(pause)
    except Exception as exc:
        errors += 1
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
print(answered, errors)
"""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("warehouse", help="write path, syncs beside readers, query latency")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="sync rounds; each figure is the best round")
    parser.add_argument("--readers", type=int, default=4, help="reader processes during the second syncs")
    parser.add_argument(
        "--reader-pause", type=float, default=0.25, help="seconds each reader waits between queries"
    )
    parser.set_defaults(run=bench_warehouse)


def bench_warehouse(args: argparse.Namespace) -> int:
    print(f"\n-- warehouse: {args.rows:,} rows, best of {args.repeat}, {args.readers} readers --")
    rows: list[tuple[str, str]] = []
    failures: list[str] = []
    rows += _write_path(args.rows)
    with bench_sync.scratch_database() as database, tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        bench_sync.POSTGRES.fill(database, args.rows)
        home = Path(tmp) / "home"
        schema_id = bench_sync._add_schema(home, bench_sync.POSTGRES, database, "full_refresh")
        alone = min(_sync(home, schema_id, args.rows, failures) for _ in range(args.repeat))
        stop = Path(tmp) / "stop"
        readers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    READER,
                    str(home / "warehouse.duckdb"),
                    str(stop),
                    str(args.reader_pause),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.readers)
        ]
        beside = min(_sync(home, schema_id, args.rows, failures) for _ in range(args.repeat))
        stop.touch()
        answered = errors = 0
        for reader in readers:
            out, err = reader.communicate(timeout=60)
            done, failed = (int(n) for n in out.split())
            answered, errors = answered + done, errors + failed
            if err.strip():
                failures.append(f"a reader failed: {err.strip().splitlines()[-1]}")
        if errors:
            failures.append(f"{errors} reader queries failed")
        rows += [
            ("full refresh, no readers", f"{alone:.2f} s ({args.rows / alone:,.0f} rows/s)"),
            (
                f"full refresh, {args.readers} readers querying every {args.reader_pause * 1000:.0f} ms",
                f"{beside:.2f} s = {beside / alone:.2f}x  ({answered:,} reader queries answered, {errors} failed)",
            ),
        ]
        rows += _latency(home / "warehouse.duckdb")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _write_path(count: int) -> list[tuple[str, str]]:
    generator = duckdb.connect()
    table = generator.sql(
        f"""SELECT range::INTEGER AS id, 'label-' || range AS label, (range % 100000)::DECIMAL(12,2) / 100 AS amount,
            TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(range) AS updated_at,
            '{{"g":' || range || '}}' AS payload, range % 2 = 0 AS flag, uuid()::VARCHAR AS ref, range / 7.0 AS score
            FROM range({count})"""
    ).to_arrow_table()
    batches = table.to_batches(50_000)
    types = {
        "id": "INTEGER",
        "label": "VARCHAR",
        "amount": "DECIMAL(12,2)",
        "updated_at": "TIMESTAMPTZ",
        "payload": "JSON",
        "flag": "BOOLEAN",
        "ref": "UUID",
        "score": "DOUBLE",
    }
    columns = [ColumnInfo(name, name, True, kind) for name, kind in types.items()]
    with tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        old = duckdb.connect(str(Path(tmp) / "old.duckdb"))
        old.execute(f"CREATE TABLE t ({', '.join(f'{n} {t}' for n, t in types.items())})")
        projection = ", ".join(f"CAST({n} AS {t}) AS {n}" for n, t in types.items())
        started = time.perf_counter()
        for batch in batches:
            old.register("batch", batch)
            old.execute(f"INSERT INTO t BY NAME SELECT {projection} FROM batch")
            old.unregister("batch")
        old.execute("CHECKPOINT")
        baseline = time.perf_counter() - started
        old.close()

        warehouse = Warehouse(Path(tmp) / "warehouse.duckdb")
        started = time.perf_counter()
        staging = warehouse.start_staging("t", columns, "bench")
        for batch in batches:
            staging.append(batch)
        staging.replace_target()
        ours = time.perf_counter() - started
        event = warehouse.start_staging("t", columns, "event")
        event.append(table.slice(777, 1))
        started = time.perf_counter()
        event.merge_into_target(["id"])
        merge = time.perf_counter() - started
        started = time.perf_counter()
        warehouse._catalog.publish(warehouse.manifest.tables)
        publish = time.perf_counter() - started
        warehouse.close()
    return [
        (
            f"write {count:,} rows (Parquet parts + publish)",
            f"{ours:.2f} s ({count / ours:,.0f} rows/s) = {ours / baseline:.2f}x DuckDB INSERT ({baseline:.2f} s)",
        ),
        (
            f"one-row merge into the {count:,}-row table",
            f"{merge * 1000:,.0f} ms (one delta and key file, merge on read)",
        ),
        ("publish a catalog version (no data change)", f"{publish * 1000:,.0f} ms"),
    ]


def _sync(home: Path, schema_id: str, expected: int, failures: list[str]) -> float:
    outcome = bench_sync._run_worker(home, schema_id, bench_sync.DEFAULT_BATCH_ROWS)
    if outcome["rows"] != expected:
        failures.append(f"the sync landed {outcome['rows']} of {expected} rows")
    return float(outcome["seconds"])


def _latency(path: Path) -> list[tuple[str, str]]:
    rows = []
    for name, sql in QUERIES.items():
        tool, plain = [], []
        for _ in range(15):
            started = time.perf_counter()
            run_query(path, sql)
            tool.append(time.perf_counter() - started)
            started = time.perf_counter()
            with duckdb.connect(str(path), read_only=True) as db:
                db.execute(sql).fetchall()
            plain.append(time.perf_counter() - started)
        rows.append(
            (
                f"query latency: {name}",
                f"data-warehouse-query p50 {_ms(tool, 50)}, p95 {_ms(tool, 95)}; "
                f"read-only duckdb.connect + query p50 {_ms(plain, 50)}",
            )
        )
    return rows


def _ms(samples: list[float], percentile: int) -> str:
    value = (
        statistics.quantiles(samples, n=100)[percentile - 1]
        if percentile != 50
        else statistics.median(samples)
    )
    return f"{value * 1000:.0f} ms"
