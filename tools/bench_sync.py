"""`bench.py sync`: full refresh of a generated 10-column table, Postgres and MySQL/MariaDB, against baselines.

For each source, in ONE run and best of `--repeat` rounds (these machines are shared and noisy, so only
ratios within a run mean anything):
- the raw read: Postgres `COPY (SELECT * ...) TO STDOUT (FORMAT binary)` drained by psycopg, decoding
  nothing; MySQL: the C client (`mysql --quick --batch`) draining the result into /dev/null;
- this project's full refresh through the real engine, in a subprocess (time and peak RSS of that process);
- dlt `sql_database` with its connectorx backend into DuckDB, installed in the benchmark's own venv under
  `~/.cache/warehouse-mcp-bench/dlt-venv` (created on first use, never a project dependency);
- optionally (`--big-rows 10000000`) our sync of a 10x bigger table: its peak RSS against the small one's.
Then one incremental sync after 1% of the rows changed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from warehouse_mcp.embedded.store import Store, jobs, schema_records, source_records, utcnow
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import DEFAULT_BATCH_ROWS, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root"}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "warehouse-mcp-bench"
DLT_VENV = CACHE / "dlt-venv"
DLT_PACKAGES = ["dlt[duckdb]", "sqlalchemy", "pyarrow", "pandas", "connectorx", "psycopg[binary]", "pymysql"]
RSS_TOLERANCE = 0.10  # the big table's peak RSS may exceed the small one's by this much

PG_TABLE = """
CREATE TABLE bench (
    id integer PRIMARY KEY, big bigint NOT NULL, amount numeric(12,2), label text, flag boolean,
    updated_at timestamptz NOT NULL, day date, payload jsonb, ref uuid, score double precision
)
"""
PG_ROWS = """
INSERT INTO bench
SELECT g, g::bigint * 1000003, (g %% 1000000) / 100.0, 'label-' || g, g %% 2 = 0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', date '2020-01-01' + (g %% 3650),
       jsonb_build_object('g', g, 'tag', 'tag-' || (g %% 10), 'nested', jsonb_build_array(g, g * 2)),
       md5(g::text)::uuid, g / 7.0
FROM generate_series(1, %s) AS g
"""
MY_TABLE = """
CREATE TABLE bench (
    id int PRIMARY KEY, big bigint NOT NULL, amount decimal(12,2), label varchar(64), flag tinyint(1),
    updated_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), day date, payload json, ref char(36),
    score double
)
"""
MY_ROWS = """
INSERT INTO bench
SELECT seq, seq * 1000003, (seq % 1000000) / 100.0, concat('label-', seq), seq % 2 = 0,
       timestamp('2024-01-01') + interval seq second, date('2020-01-01') + interval (seq % 3650) day,
       json_object('g', seq, 'tag', concat('tag-', seq % 10), 'nested', json_array(seq, seq * 2)),
       md5(seq), seq / 7.0
FROM seq_1_to_{rows}
"""


def add_commands(commands: Any) -> None:
    sync = commands.add_parser(
        "sync", help="full refresh vs. raw read and dlt + connectorx (Postgres, MySQL)"
    )
    add_arguments(sync)
    sync.set_defaults(run=bench_sync)
    worker = commands.add_parser("sync-worker", help=argparse.SUPPRESS)
    worker.add_argument("--home", required=True)
    worker.add_argument("--schema-id", required=True)
    worker.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    worker.set_defaults(run=sync_worker)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated table")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best round")
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per Arrow batch")
    parser.add_argument("--source", choices=["postgres", "mysql", "both"], default="both")
    parser.add_argument(
        "--big-rows",
        type=int,
        default=0,
        help="also sync a table this big (e.g. 10000000) and compare peak RSS",
    )
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt + connectorx baseline")


@dataclass
class _Source:
    kind: str  # "Postgres" | "MySQL"
    database: Callable[[], Any]  # context manager yielding a scratch database name
    fill: Callable[[str, int], None]
    raw_read: Callable[[str], float]
    config: Callable[[str], dict[str, Any]]
    dlt_url: Callable[[str], str]
    touch_one_percent: Callable[[str], int]


def bench_sync(args: argparse.Namespace) -> int:
    sources = {"postgres": [POSTGRES], "mysql": [MYSQL], "both": [POSTGRES, MYSQL]}[args.source]
    dlt_python = None if args.no_dlt else _dlt_python()
    failed = 0
    for source in sources:
        print(f"\n-- {source.kind}: {args.rows:,} rows x 10 columns, best of {args.repeat} --")
        failed |= _bench_source(source, args, dlt_python)
    return failed


def _bench_source(source: _Source, args: argparse.Namespace, dlt_python: str | None) -> int:
    rows: list[tuple[str, str]] = []
    failures: list[str] = []
    with source.database() as database, tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
        started = time.perf_counter()
        source.fill(database, args.rows)
        rows.append(("build table", f"{time.perf_counter() - started:.1f} s"))
        raw, ours, dlt = [], [], []
        full_id = _add_schema(Path(tmp) / "full", source, database, "full_refresh")
        for _ in range(args.repeat):
            raw.append(source.raw_read(database))
            outcome = _run_worker(Path(tmp) / "full", full_id, args.batch_rows)
            if outcome["rows"] != args.rows:
                failures.append(f"our sync landed {outcome['rows']} of {args.rows} rows")
            ours.append(outcome)
            if dlt_python:
                dlt.append(_run_dlt(dlt_python, source.dlt_url(database), Path(tmp) / "dlt", args.rows))
        best_raw = min(raw)
        best = min(ours, key=lambda o: o["seconds"])
        peak = max(o["peak_rss_mb"] for o in ours)
        read_peak = max(o["read_rss_mb"] for o in ours)
        together_peak = max(o["together_rss_mb"] for o in ours)
        rows += [
            (
                "raw read (" + ("binary COPY" if source.kind == "Postgres" else "mysql --quick") + ")",
                f"{best_raw:.2f} s",
            ),
            (
                "our full refresh into DuckDB",
                f"{best['seconds']:.2f} s = {best['seconds'] / best_raw:.2f}x raw  ({args.rows / best['seconds']:,.0f} rows/s)",
            ),
            (
                "our peak RSS (sync + read process)",
                f"{peak:,.0f} MB  (after imports {best['start_rss_mb']:,.0f} MB"
                + (f"; read process {read_peak:,.0f} MB of it)" if read_peak else ")"),
            ),
            (
                "  sampled at once (every 10 ms)",
                f"{together_peak:,.0f} MB",
            ),
        ]
        if dlt:
            best_dlt = min(dlt)
            rows += [
                (
                    "dlt sql_database + connectorx into DuckDB",
                    f"{best_dlt:.2f} s = {best_dlt / best_raw:.2f}x raw",
                ),
                ("our full refresh / dlt + connectorx", f"{best['seconds'] / best_dlt:.2f}x"),
            ]
        incremental_id = _add_schema(Path(tmp) / "incremental", source, database, "incremental")
        _run_worker(Path(tmp) / "incremental", incremental_id, args.batch_rows)
        changed = source.touch_one_percent(database)
        incremental = _run_worker(Path(tmp) / "incremental", incremental_id, args.batch_rows)
        if incremental["rows"] != changed:
            failures.append(f"incremental sync read {incremental['rows']} rows, expected {changed}")
        rows.append(
            (
                f"incremental sync ({changed:,} changed rows)",
                f"{incremental['seconds']:.2f} s = {incremental['seconds'] / best['seconds']:.3f} of full",
            )
        )
    if args.big_rows:
        with source.database() as database, tempfile.TemporaryDirectory(prefix="wmcp-bench-") as tmp:
            source.fill(database, args.big_rows)
            big_id = _add_schema(Path(tmp), source, database, "full_refresh")
            big = _run_worker(Path(tmp), big_id, args.batch_rows)
        growth = big["peak_rss_mb"] / peak - 1
        rows.append(
            (
                f"{args.big_rows:,}-row full refresh",
                f"{big['seconds']:.1f} s, peak RSS {big['peak_rss_mb']:,.0f} MB = {growth:+.1%} vs {args.rows:,} rows",
            )
        )
        if big["rows"] != args.big_rows:
            failures.append(f"the big sync landed {big['rows']} of {args.big_rows} rows")
        if growth > RSS_TOLERANCE:
            failures.append(f"peak RSS grew {growth:.1%} with a {args.big_rows // args.rows}x table")
    _print(rows)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


# --- our sync, in its own process ------------------------------------------------------------------------


def _add_schema(home: Path, source: _Source, database: str, sync_type: str) -> str:
    home.mkdir(parents=True, exist_ok=True)
    store, vault = Store(home), Vault(home)
    job_inputs, job_inputs_secret = source_records.encode_config(vault, source.kind, source.config(database))
    source_id = str(uuid.uuid4())
    with store.transaction() as db:
        source_records.insert(
            db,
            source_id=source_id,
            team_id=1,
            source_type=source.kind,
            prefix=None,
            description=None,
            created_via="api",
            access_method="warehouse",
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata={"engine": "duckdb"},
        )
        incremental = sync_type == "incremental"
        return schema_records.insert(
            db,
            team_id=1,
            source_id=source_id,
            name="bench",
            table=None,
            should_sync=True,
            sync_type=sync_type,
            incremental_field="updated_at" if incremental else None,
            incremental_field_type="datetime" if incremental else None,
            primary_key_columns=["id"],
        )


def _run_worker(home: Path, schema_id: str, batch_rows: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).with_name("bench.py")), "sync-worker"]
    command += ["--home", str(home), "--schema-id", schema_id, "--batch-rows", str(batch_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sync worker failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def sync_worker(args: argparse.Namespace) -> int:
    """One sync job in this process: prints {seconds, rows, peak_rss_mb, start_rss_mb} as JSON."""
    home = Path(args.home)
    store, vault = Store(home), Vault(home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    engine = SyncEngine(store, vault, warehouse, Clock(), batch_rows=args.batch_rows)
    job = jobs.claim(store, args.schema_id, utcnow())
    if job is None:
        raise SystemExit("could not claim the sync job")
    start_rss = _peak_rss_mb()
    together = _TogetherPeak()
    started = time.perf_counter()
    outcome = engine.run(job)
    seconds = time.perf_counter() - started
    together.stop()
    warehouse.close()
    if outcome.status != "Completed":
        raise SystemExit(f"sync {outcome.status}: {outcome.error}")
    result = {
        "seconds": seconds,
        "rows": outcome.rows_synced,
        "peak_rss_mb": _peak_rss_mb() + together.child_peak_mb,
        "read_rss_mb": together.child_peak_mb,
        "together_rss_mb": together.peak_mb,
    }
    print(json.dumps({**result, "start_rss_mb": start_rss}))
    return 0


class _TogetherPeak:
    """Peak of this process's RSS plus its children's at the same moment, and the largest child's own peak,
    sampled every 10 ms.

    A child counts only once it has exec'd: until then (subprocess's vfork) it shares this process's memory
    and its /proc figures are this process's, which would count them twice. For the same reason the kernel's
    RUSAGE_CHILDREN peak is no measure of the read process: it keeps the parent's high-water mark from
    before the exec.
    """

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.child_peak_mb = 0.0
        self._own_command = Path("/proc/self/cmdline").read_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            total = _rss_mb(os.getpid())
            for children in Path("/proc/self/task").glob("*/children"):
                for pid in children.read_text().split():
                    child = self._exec_rss_mb(int(pid))
                    total += child
                    self.child_peak_mb = max(self.child_peak_mb, child)
            self.peak_mb = max(self.peak_mb, total)

    def _exec_rss_mb(self, pid: int) -> float:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() != self._own_command:
                return _rss_mb(pid)
        return 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    """This process's peak RSS (a read process's own peak is sampled: see _TogetherPeak)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- dlt + connectorx, in the benchmark's own venv --------------------------------------------------------

DLT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import dlt, duckdb
    from dlt.sources.sql_database import sql_table

    url, folder = sys.argv[1], sys.argv[2]
    pipeline = dlt.pipeline(
        pipeline_name="bench", pipelines_dir=folder + "/pipelines",
        destination=dlt.destinations.duckdb(folder + "/dlt.duckdb"), dataset_name="bench",
    )
    started = time.perf_counter()
    pipeline.run(sql_table(credentials=url, table="bench", backend="connectorx"), write_disposition="replace")
    seconds = time.perf_counter() - started
    rows = duckdb.connect(folder + "/dlt.duckdb").execute("select count(*) from bench.bench").fetchone()[0]
    print(json.dumps({"seconds": seconds, "rows": rows}))
    """
)


def _dlt_python() -> str:
    python = DLT_VENV / "bin" / "python"
    if not (DLT_VENV / ".complete").exists():
        print(f"(installing dlt + connectorx into {DLT_VENV} for the baseline)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DLT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DLT_PACKAGES], check=True)
        (DLT_VENV / ".complete").touch()
    script = CACHE / "dlt_sync.py"
    script.write_text(DLT_SCRIPT)
    return str(python)


def _run_dlt(python: str, url: str, folder: Path, expected_rows: int) -> float:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, "RUNTIME__LOG_LEVEL": "WARNING", "DLT_DATA_DIR": str(folder / "data")}
    done = subprocess.run(
        [python, str(CACHE / "dlt_sync.py"), url, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"dlt baseline failed:\n{done.stderr[-3000:]}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    if outcome["rows"] != expected_rows:
        raise SystemExit(f"dlt landed {outcome['rows']} of {expected_rows} rows")
    return float(outcome["seconds"])


# --- Postgres ---------------------------------------------------------------------------------------------


def _pg(database: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(**PG, dbname=database, autocommit=autocommit)


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"wmcp_bench_{uuid.uuid4().hex[:10]}"
    with _pg("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield name
    finally:
        with _pg("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def _pg_fill(database: str, rows: int) -> None:
    with _pg(database) as conn:
        conn.execute(PG_TABLE)  # type: ignore[arg-type]
        conn.execute(PG_ROWS, (rows,))  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE bench")


def _pg_raw_read(database: str) -> float:
    started = time.perf_counter()
    with (
        _pg(database, autocommit=False) as conn,
        conn.cursor().copy("COPY (SELECT * FROM bench) TO STDOUT (FORMAT binary)") as copy,
    ):
        for _chunk in copy:
            pass
    return time.perf_counter() - started


def _pg_touch(database: str) -> int:
    with _pg(database) as conn:
        cursor = conn.execute(
            "UPDATE bench SET updated_at = updated_at + interval '1000 days' WHERE id % 100 = 0"
        )
        return cursor.rowcount


POSTGRES = _Source(
    kind="Postgres",
    database=scratch_database,
    fill=_pg_fill,
    raw_read=_pg_raw_read,
    config=lambda db: {**PG, "password": "", "database": db, "schema": "public"},
    dlt_url=lambda db: f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
    touch_one_percent=_pg_touch,
)


# --- MySQL / MariaDB --------------------------------------------------------------------------------------


def _my(database: str | None = None) -> Any:
    return pymysql.connect(**MY, database=database, autocommit=True)  # type: ignore[arg-type]


@contextmanager
def _my_database() -> Iterator[str]:
    name = f"wmcp_bench_{uuid.uuid4().hex[:10]}"
    with _my() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with _my() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _my_fill(database: str, rows: int) -> None:
    with _my(database) as conn, conn.cursor() as cursor:
        cursor.execute(MY_TABLE)
        cursor.execute(MY_ROWS.format(rows=int(rows)))  # MariaDB's sequence engine
        cursor.execute("ANALYZE TABLE bench")


def _my_raw_read(database: str) -> float:
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise SystemExit("the MySQL baseline needs the mysql (or mariadb) command-line client")
    command = [client, f"-h{MY['host']}", f"-P{MY['port']}", f"-u{MY['user']}", "--quick", "--batch", "--raw"]
    started = time.perf_counter()
    subprocess.run([*command, "-e", "SELECT * FROM bench", database], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _my_touch(database: str) -> int:
    with _my(database) as conn, conn.cursor() as cursor:
        return int(
            cursor.execute("UPDATE bench SET updated_at = updated_at + interval 1000 day WHERE id % 100 = 0")
        )


MYSQL = _Source(
    kind="MySQL",
    database=_my_database,
    fill=_my_fill,
    raw_read=_my_raw_read,
    config=lambda db: {**MY, "password": "", "database": db, "schema": db, "using_ssl": "false"},
    dlt_url=lambda db: f"mysql+pymysql://{MY['user']}@{MY['host']}:{MY['port']}/{db}",
    touch_one_percent=_my_touch,
)


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
