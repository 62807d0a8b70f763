"""Issue 11: faults in the middle of a real running sync. The source's connection is killed, the source
"restarts" (every backend of the test database killed: the shared servers are never restarted), the job is
cancelled through the API. Each time the job ends with a clear reason, the previous table stays whole and
readable, the cursor does not move, and the next run completes with the warehouse equal to the source.

MySQL/MariaDB runs twice: on a plain connection (read by connectorx in a child process) and over TLS (read
in-process by PyMySQL: connectorx has no TLS for MySQL).

A sync is caught mid-read deterministically: right after the sync has listed the source's tables, another
session locks the table, so the sync's read waits at the source (really running, holding its connection)
until the fault hits it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.conftest import Bastion, Database, _my_args, _pg_args
from tests.embedded.api_support import SCHEMAS, Api
from tests.waiting import wait_until
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors import registry, ssh_tunnel
from warehouse_mcp.embedded.connectors.base import ReadRequest
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.jobs import CANCELLED_ERROR
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import JobProgress
from warehouse_mcp.embedded.sync.read_ahead import read_ahead
from warehouse_mcp.embedded.sync.warehouse import Warehouse, quote

from .sync_support import add_schema, add_source, run_sync, schema_row

ROWS = 20_000


def create_big(db: Database) -> None:
    stamp = "timestamp" if db.kind == "postgres" else "datetime(6)"
    db.execute(f"CREATE TABLE big (id int PRIMARY KEY, v varchar(60), updated_at {stamp} NOT NULL)")
    add_rows(db, 1, ROWS)
    db.execute("ANALYZE big" if db.kind == "postgres" else "ANALYZE TABLE big")


def add_rows(db: Database, first: int, last: int) -> None:
    if db.kind == "postgres":
        db.execute(
            "INSERT INTO big SELECT g, repeat('x', 50) || g, timestamp '2024-01-01' + g * interval '1 second' "
            f"FROM generate_series({first}, {last}) g"
        )
    else:
        db.execute(
            "SET SESSION max_recursive_iterations = 1000000",
            f"INSERT INTO big WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last}) "
            "SELECT n, CONCAT(REPEAT('x', 50), n), TIMESTAMP '2024-01-01 00:00:00' + INTERVAL n SECOND FROM g",
        )


def assert_same_rows(db: Database, warehouse: Warehouse, table: str) -> None:
    landed = warehouse.cursor().execute(f"SELECT id, v, updated_at FROM {quote(table)}").fetchall()
    assert Counter(landed) == Counter(db.fetch("SELECT id, v, updated_at FROM big"))


class TableLock:
    """Another session holding a lock on `big` that blocks the sync's read until released."""

    def __init__(self, db: Database) -> None:
        self.db = db
        if db.kind == "postgres":
            self.pg = psycopg.connect(**_pg_args(db.name))
            self.pg.execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
        else:
            self.my = pymysql.connect(**_my_args(db.name), autocommit=True)
            with self.my.cursor() as cursor:
                cursor.execute("LOCK TABLES big WRITE")

    def release(self) -> None:
        if self.db.kind == "postgres":
            with contextlib.suppress(psycopg.Error):  # killed with the rest
                self.pg.rollback()
            self.pg.close()
        else:
            try:
                with self.my.cursor() as cursor:
                    cursor.execute("UNLOCK TABLES")
            except pymysql.err.MySQLError:
                pass  # killed with the rest
            self.my.close()


class LockAfterDiscovery:
    """Once armed, the next sync's table listing is followed by a TableLock (the read comes next)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed: Database | None = None
        self.lock: TableLock | None = None
        real_connector_for = registry.connector_for

        def connector_for(source_type: str) -> Any:
            real = real_connector_for(source_type)
            locker = self

            class Locking:
                def __getattr__(self, name: str) -> Any:
                    return getattr(real, name)

                def discover(self, config: Any) -> Any:
                    tables = real.discover(config)
                    if locker.armed is not None and locker.lock is None:
                        locker.lock = TableLock(locker.armed)
                    return tables

            return Locking()

        monkeypatch.setattr(registry, "connector_for", connector_for)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def blocked_readers(db: Database) -> list[int]:
    """Server ids of the sync's connections waiting for the lock."""
    if db.kind == "postgres":
        rows = db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'wmcp_secure' "
            "AND wait_event_type = 'Lock'"
        )
    else:
        rows = db.fetch(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'wmcp_secure' "
            f"AND DB = '{db.name}' AND STATE LIKE 'Waiting for table%%lock'"
        )
    return [row[0] for row in rows]


def still_at_source(db: Database, readers: list[int]) -> list[int]:
    """Those of `readers` still connected, and any session of the sync's user still running a query."""
    listed = ", ".join(str(reader) for reader in readers) or "0"
    if db.kind == "postgres":
        rows = db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'wmcp_secure' "
            f"AND (pid IN ({listed}) OR state <> 'idle')"
        )
    else:
        rows = db.fetch(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'wmcp_secure' "
            f"AND DB = '{db.name}' AND (ID IN ({listed}) OR COMMAND <> 'Sleep')"
        )
    return [row[0] for row in rows]


def kill(db: Database, ids: list[int]) -> None:
    if db.kind == "postgres":
        db.execute(*(f"SELECT pg_terminate_backend({pid})" for pid in ids))
    else:
        for connection in ids:
            with contextlib.suppress(pymysql.err.MySQLError):  # gone already
                db.execute(f"KILL {connection}")


def restart_effects(db: Database) -> None:
    """What a source restart does to this database's sessions: every one of them is cut off."""
    if db.kind == "postgres":
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    else:
        ids = [
            row[0]
            for row in db.fetch(f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{db.name}'")
        ]
        mine = db.fetch("SELECT CONNECTION_ID()")[0][0]
        kill(db, [i for i in ids if i != mine])


def strike(db: Database, fault: str) -> None:
    """Once the sync's read waits at the source, kill its connection (or every connection to the
    database, as a restart would)."""
    readers = wait_until(lambda: blocked_readers(db), "the sync's read to wait at the source", timeout=60)
    kill(db, readers)  # first, so the read cannot slip through while the lock holder dies
    if fault == "source_restarted":
        restart_effects(db)


@pytest.fixture(params=["postgres", "mysql", "mysql_tls"])
def db(request: pytest.FixtureRequest) -> Database:
    if request.param == "mysql_tls":
        request.getfixturevalue("tls_ca")  # skips when the server has no TLS
        plain: Database = request.getfixturevalue("mysql_db")
        database = dataclasses.replace(plain, config={**plain.config, "using_ssl": "true"})
    else:
        database = request.getfixturevalue(f"{request.param}_db")
    create_big(database)
    return database


def source_type(db: Database) -> str:
    return "Postgres" if db.kind == "postgres" else "MySQL"


@pytest.mark.parametrize("fault", ["connection_killed", "source_restarted"])
def test_a_fault_mid_read_fails_the_job_clearly_and_loses_nothing(
    db: Database,
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    locker = LockAfterDiscovery(monkeypatch)
    source_id = add_source(store, vault, source_type(db), db.config)
    schema_id = add_schema(
        store,
        source_id,
        "big",
        sync_type="incremental",
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]
    before = schema_row(store, schema_id)
    add_rows(db, ROWS + 1, ROWS + 500)

    locker.armed = db
    outcome: list[JobProgress] = []
    running = threading.Thread(target=lambda: outcome.append(run_sync(store, vault, warehouse, schema_id)))
    running.start()
    try:
        strike(db, fault)  # from this process: a read waiting at the source does not hold it up
        running.join(30)
        assert not running.is_alive(), "the job did not end after its connection died"
    finally:
        locker.release()
        running.join(30)

    [failed] = outcome
    assert failed.status == "Failed"
    assert failed.error is not None and failed.error.startswith("Reading '"), failed.error
    assert "big' failed: " in failed.error, failed.error
    after = schema_row(store, schema_id)
    assert after["sync_cursor"] == before["sync_cursor"], "the cursor ran ahead of committed data"
    assert after["table_row_count"] == ROWS
    assert warehouse.row_count(table) == ROWS  # the previous table, whole and readable

    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, table)


def test_cancel_through_the_api_ends_a_sync_stuck_at_the_source_within_seconds(
    home: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel operation on a job whose read waits at the source: while it waits the process stays
    responsive (MySQL's plain connectorx read runs in a child process: it holds the GIL while it waits), the job
    ends at once on cancel (not when the source answers), its read leaves the source at once too (no query
    left holding a connection, locks or a snapshot there), the previous table stays, and the next run
    completes equal to the source."""
    backend = EmbeddedBackend(home, run_scheduler=True)
    backend.start()
    try:
        api = Api(backend)
        schemas = [{"name": "big", "should_sync": True, "sync_type": "full_refresh"}]
        source_id = api.create_source(source_type(db), {**db.config, "schemas": schemas})
        schema = api.schema_by_name(source_id, "big")

        def status() -> str | None:
            return api.get(f"{SCHEMAS}{schema['id']}/").json()["status"]

        wait_until(lambda: status() == "Completed", f"the first load ({status()}, {api.source(source_id)})")
        add_rows(db, ROWS + 1, ROWS + 500)
        locker = LockAfterDiscovery(monkeypatch)
        locker.armed = db
        try:
            assert api.post(f"{SCHEMAS}{schema['id']}/reload/").status_code == 200
            wait_until(lambda: blocked_readers(db), "the sync's read to wait at the source")
            # Stuck at the source, the job leaves this process free: other threads work, the API answers.
            worked: list[int] = []
            other = threading.Thread(target=lambda: worked.append(sum(range(100_000))))
            other.start()
            other.join(10)
            assert worked == [sum(range(100_000))], "another thread could not run while the read waits"
            assert status() == "Running"
            readers = blocked_readers(db)
            assert readers, "the read stopped waiting before the cancel"
            assert api.post(f"{SCHEMAS}{schema['id']}/cancel/").status_code == 200
            wait_until(lambda: status() != "Running", "the cancelled job to end", timeout=15)
            # The abandoned read leaves the source while the lock is still held: its query is cancelled
            # at the server (Postgres), killed with KILL QUERY (MySQL over TLS) or its read process killed
            # (plain MySQL), and its connection closed.
            wait_until(
                lambda: not still_at_source(db, readers), "the cancelled read to leave the source", timeout=10
            )
        finally:
            locker.release()
        job = backend.store.query_one(
            "SELECT status, latest_error FROM jobs WHERE schema_id = ? ORDER BY created_at DESC LIMIT 1",
            (schema["id"],),
        )
        assert job is not None and (job["status"], job["latest_error"]) == ("Failed", CANCELLED_ERROR)
        landed = api.get(f"{SCHEMAS}{schema['id']}/").json()["table"]
        assert landed["row_count"] == ROWS

        assert api.post(f"{SCHEMAS}{schema['id']}/reload/").status_code == 200
        wait_until(
            lambda: (
                status() == "Completed"
                and api.get(f"{SCHEMAS}{schema['id']}/").json()["table"]["row_count"] == ROWS + 500
            ),
            "the next run",
        )
        table = landed["name"]
    finally:
        backend.close()
    warehouse = Warehouse(home / "warehouse.duckdb")
    try:
        assert_same_rows(db, warehouse, table)
    finally:
        warehouse.close()


class _GaveUp(Exception):
    pass


@pytest.mark.parametrize("db", ["postgres", "mysql_tls"], indirect=True)
def test_a_read_abandoned_by_a_failure_is_stopped_at_the_server_through_the_ssh_tunnel(
    db: Database, bastion: Bastion
) -> None:
    """Not only the cancel operation: whatever makes the sync stop waiting for its read (here a failure
    raised while the read waits on a locked table) stops the read's query at the server (Postgres: a
    cancel request; MySQL over TLS: KILL QUERY from a second connection), through the source's SSH
    tunnel, and the read's connection closes while the lock is still held."""
    config = {**db.config, "ssh_tunnel": bastion.tunnel()}
    connector = registry.connector_for(source_type(db))
    [table] = [table for table in connector.discover(config) if table.name == "big"]
    readers: list[int] = []

    def fail_once_blocked() -> None:
        readers.extend(blocked_readers(db))
        if readers:
            raise _GaveUp

    lock = TableLock(db)
    try:
        with ssh_tunnel.tunnel_scope():  # as a sync job: one tunnel, open until the job ends
            batches = read_ahead(
                connector.read(config, ReadRequest(table=table)), while_waiting=fail_once_blocked
            )
            with pytest.raises(_GaveUp):
                next(batches)
            wait_until(
                lambda: not still_at_source(db, readers),
                "the abandoned read to leave the source",
                timeout=10,
            )
    finally:
        lock.release()
