"""Durability: `kill -9` a process in the middle of writes and in the middle of a sync, restart on the same data
directory, and find everything that was acknowledged, whole and readable.

- writes: a child process serves the embedded API and four threads create sources and store credentials
  in a loop, printing each id only after the API acknowledged it; the test kills it mid-stream.
- sync: `warehouse-mcp --transport http` syncs a 400k-row Postgres table; the test kills it once a batch
  has been staged, then restarts the same command on the same home.
After each: SQLite integrity_check is ok, no torn source (every source has all its schemas), acknowledged
rows are all there, jobs the dead process left Running end Failed with a reason, the warehouse table is
the previous complete one (then the complete new one), and stored secrets still decrypt.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import pytest
from cryptography.fernet import Fernet
from mcp import Client

from tests.conftest import CANARY_PASSWORD, Database
from tests.reliability.support import kill_hard, server_env, start_http_server, stop
from tests.waiting import wait_until
from warehouse_mcp.embedded.domain.credentials import take_stored_credential
from warehouse_mcp.embedded.store import DB_FILE, Store
from warehouse_mcp.embedded.store.jobs import INTERRUPTED_ERROR
from warehouse_mcp.embedded.store.source_records import source_config
from warehouse_mcp.embedded.store.vault import KEY_FILE, Vault, VaultError
from warehouse_mcp.harness import EmbeddedApi

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

WRITER = textwrap.dedent(
    """
    import json, os, sys, threading
    from pathlib import Path
    import httpx
    from warehouse_mcp.harness import EmbeddedApi

    config = json.loads(os.environ["RELIABILITY_CONFIG"])
    api = EmbeddedApi(Path(sys.argv[1])).start()
    out = threading.Lock()

    def say(line):
        with out:
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()

    def worker(number):
        base = api.url + "/api/projects/1/external_data_sources/"
        with httpx.Client(headers={"Authorization": "Bearer " + api.token}, timeout=60) as http:
            for step in range(100000):
                if step % 2:
                    answer = http.post(base + "store_credentials/", json={"source_type": "Postgres", "payload": config})
                    assert answer.status_code == 201, answer.text
                    say("CRED " + answer.json()["credential_id"])
                else:
                    prefix = f"w{number}_{step}"
                    payload = {**config, "schemas": [{"name": "accounts", "should_sync": True, "sync_type": "full_refresh"}]}
                    answer = http.post(base, json={"source_type": "Postgres", "prefix": prefix, "payload": payload})
                    assert answer.status_code == 201, answer.text
                    say("SOURCE " + answer.json()["id"])

    for number in range(4):
        threading.Thread(target=worker, args=(number,), daemon=True).start()
    threading.Event().wait()
    """
)


@dataclass
class Acknowledged:
    sources: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)


def check_home(home: Path, acknowledged: Acknowledged, *, tables_per_source: int) -> None:
    """What must hold after a crash: an intact store, every acknowledged write whole, secrets readable."""
    with sqlite3.connect(home / DB_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        torn = db.execute(
            "SELECT s.id, count(sc.id) FROM sources s LEFT JOIN schemas sc ON sc.source_id = s.id "
            "WHERE s.deleted = 0 GROUP BY s.id HAVING count(sc.id) != ?",
            (tables_per_source,),
        ).fetchall()
        assert torn == [], f"sources without all their schemas: {torn}"
        present = {row[0] for row in db.execute("SELECT id FROM sources WHERE deleted = 0")}
        lost = set(acknowledged.sources) - present
        assert not lost, f"acknowledged sources lost: {sorted(lost)}"
        stored = {row[0] for row in db.execute("SELECT id FROM stored_credentials")}
        lost = set(acknowledged.credentials) - stored
        assert not lost, f"acknowledged credentials lost: {sorted(lost)}"
    store, vault = Store(home), Vault(home)
    for source_id in acknowledged.sources:
        assert source_config(store, vault, source_id)["password"] == CANARY_PASSWORD
    for credential_id in acknowledged.credentials:
        payload = take_stored_credential(store, vault, 1, credential_id, "Postgres")
        assert payload["password"] == CANARY_PASSWORD


def seed_accounts(db: Database) -> None:
    db.execute(
        "CREATE TABLE accounts (id serial PRIMARY KEY, name text, updated_at timestamptz DEFAULT now())",
        "CREATE TABLE audit (what text)",
        "INSERT INTO accounts (name) SELECT 'a' || i FROM generate_series(1, 5) i",
    )


def kill_writer_midway(home: Path, db: Database, *, after_sources: int) -> Acknowledged:
    env = {**os.environ, "RELIABILITY_CONFIG": json.dumps(db.config)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    acknowledged = Acknowledged()
    try:
        assert child.stdout is not None
        while len(acknowledged.sources) < after_sources:
            line = child.stdout.readline()
            assert line, "the writer died: " + (child.stderr.read() if child.stderr else "")
            kind, ident = line.split()
            (acknowledged.sources if kind == "SOURCE" else acknowledged.credentials).append(ident)
    finally:
        kill_hard(child)  # in the middle of the next writes of all four threads
    return acknowledged


@pytest.fixture
def writes_killed(tmp_path: Path, postgres_db: Database) -> Iterator[tuple[Path, Acknowledged, set[str]]]:
    seed_accounts(postgres_db)
    home = tmp_path / "home"
    acknowledged = kill_writer_midway(home, postgres_db, after_sources=40)
    with sqlite3.connect(home / DB_FILE) as db:
        running = {row[0] for row in db.execute("SELECT id FROM jobs WHERE status = 'Running'")}
    yield home, acknowledged, running


def test_kill_9_during_writes_loses_nothing_acknowledged(
    writes_killed: tuple[Path, Acknowledged, set[str]],
) -> None:
    home, acknowledged, running_at_kill = writes_killed
    # Forty sources queue forty syncs, two at a time: the kill always lands on running ones.
    assert running_at_kill, "no sync was running when the writer was killed"
    check_home(home, acknowledged, tables_per_source=2)

    # Restart on the same home: the API answers everything, and jobs the dead process left Running end Failed.
    store = Store(home)

    def orphans_recovered() -> bool:
        # Until the restarted scheduler takes the lock and fails them, the dead process's jobs stay Running.
        return not store.query("SELECT id FROM jobs WHERE status = 'Running'")

    with EmbeddedApi(home) as api:
        wait_until(orphans_recovered, what="the restarted scheduler to fail the orphaned jobs")
        headers = {"Authorization": f"Bearer {api.token}"}
        listed = httpx.get(
            f"{api.url}/api/projects/1/external_data_sources/?limit=1000", headers=headers
        ).json()
        stored = httpx.get(
            f"{api.url}/api/projects/1/external_data_sources/stored_credentials/", headers=headers
        ).json()
    assert set(acknowledged.sources) <= {source["id"] for source in listed["results"]}
    assert set(acknowledged.credentials) <= {item["credential_id"] for item in stored}
    with sqlite3.connect(home / DB_FILE) as db:
        for job_id in running_at_kill:
            status, error = db.execute(
                "SELECT status, latest_error FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            assert (status, error) == ("Failed", INTERRUPTED_ERROR)
    check_home(home, acknowledged, tables_per_source=2)


def test_guard_the_crash_checks_notice_loss_tearing_and_a_lost_key(
    writes_killed: tuple[Path, Acknowledged, set[str]],
) -> None:
    """Break each guarantee on purpose (what a non-atomic or non-durable store would leave); the check must fail."""
    home, acknowledged, _ = writes_killed
    check_home(home, acknowledged, tables_per_source=2)
    source = acknowledged.sources[-1]
    tamperings = {
        "lost": f"UPDATE sources SET deleted = 1 WHERE id = '{source}'",
        "torn": f"DELETE FROM schemas WHERE source_id = '{source}' AND name = 'audit'",
        "credential lost": f"DELETE FROM stored_credentials WHERE id = '{acknowledged.credentials[-1]}'",
    }
    for number, sql in enumerate(tamperings.values()):
        copy = shutil.copytree(home, home.with_name(f"tampered-{number}"))
        with sqlite3.connect(copy / DB_FILE) as db:
            db.execute(sql)
        with pytest.raises(AssertionError):
            check_home(copy, acknowledged, tables_per_source=2)
    copy = shutil.copytree(home, home.with_name("other-key"))
    (copy / KEY_FILE).write_bytes(Fernet.generate_key())
    with pytest.raises(VaultError, match="cannot be decrypted"):
        check_home(copy, acknowledged, tables_per_source=2)


# --- kill -9 during a sync ------------------------------------------------------------------------------


def warehouse_count(home: Path, table: str) -> tuple[int, int]:
    """(rows, distinct ids) of the warehouse table, read as another process would; nothing may sit beside it."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        row = db.execute(f'SELECT count(*), count(DISTINCT id) FROM "{table}"').fetchone()
        tables = {
            name for (name,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert row is not None
    others = tables - {table}
    assert not others, f"unexpected tables beside {table}: {others}"
    return int(row[0]), int(row[1])


async def call(client: Client, tool: str, arguments: dict) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, "".join(getattr(block, "text", "") for block in result.content))
    return result.structured_content or {}


@pytest.mark.anyio
async def test_kill_9_during_a_sync_keeps_the_previous_table_and_recovers(
    tmp_path: Path, postgres_db: Database
) -> None:
    postgres_db.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO big SELECT g, 'row ' || g, now() - interval '1 day' FROM generate_series(1, 1000) g",
    )
    home = tmp_path / "home"
    env = server_env(home)
    process, url = start_http_server(env)
    try:
        async with Client(url) as client:
            stored = await call(
                client,
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": postgres_db.config},
            )
            source = await call(
                client,
                "data-warehouse-source-setup",
                {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            )
            waited = await call(
                client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 60}
            )
            assert waited["done"] and waited["rows_synced"] == 1000, waited
            retrieved = await call(client, "external-data-sources-retrieve", {"id": source["id"]})
            [schema] = retrieved["schemas"]
            table = schema["table"]["name"]
            postgres_db.execute(
                "INSERT INTO big SELECT g, repeat('p', 80) || g, now() FROM generate_series(1001, 401000) g"
            )
            await call(client, "external-data-schemas-reload-create", {"id": schema["id"]})

        def staged_batch() -> str | None:
            row = Store(home).query_one(
                "SELECT id FROM jobs WHERE schema_id = ? AND status = 'Running' AND rows_synced > 0",
                (schema["id"],),
            )
            return row["id"] if row else None

        killed_job = wait_until(staged_batch, timeout=60, what="a staged batch of the second sync")
    finally:
        kill_hard(process)

    with sqlite3.connect(home / DB_FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT status FROM jobs WHERE id = ?", (killed_job,)).fetchone() == ("Running",)
    # The previous complete table, untouched: the killed job's staged parts are invisible to readers.
    assert warehouse_count(home, table) == (1000, 1000)

    process, url = start_http_server(env)
    try:
        async with Client(url) as client:
            waited = await call(
                client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 120}
            )
            assert waited["done"], waited
            jobs = (await call(client, "external-data-sources-jobs-retrieve", {"id": source["id"]}))[
                "results"
            ]
            after = await call(client, "external-data-schemas-retrieve", {"id": schema["id"]})
    finally:
        stop(process)
    by_id = {job["id"]: job for job in jobs}
    assert (by_id[killed_job]["status"], by_id[killed_job]["latest_error"]) == ("Failed", INTERRUPTED_ERROR)
    assert jobs[0]["status"] == "Completed", jobs[0]
    assert after["table"]["row_count"] == 401000
    assert warehouse_count(home, table) == (401000, 401000)
    assert source_config(Store(home), Vault(home), source["id"])["password"] == CANARY_PASSWORD
