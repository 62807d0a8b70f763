"""Fixtures for the embedded API tests: a backend on a fresh data dir, a client that checks every answer.

`Api` calls the app the way the MCP layer does, through `httpx.AsyncClient(transport=ASGITransport)`
(one short event loop per call, so tests stay synchronous). Paths are relative to `/api/projects/1/`
(or another family), and every response body it sees is kept, so the fixture can assert at
teardown that the canary password (the real password of the test databases' role) never left the
server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CANARY_PASSWORD, Database, fresh_postgres
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.store import iso, utcnow

SOURCES = "external_data_sources/"
SCHEMAS = "external_data_schemas/"


class Api:
    def __init__(self, backend: EmbeddedBackend, family: str = "projects", project: str = "1") -> None:
        self.backend = backend
        self.base = f"/api/{family}/{project}/"
        self.bodies: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith(("/", "http://", "https://")) else self.base + path
        response = asyncio.run(self._send(method, url, **kwargs))
        self.bodies.append(response.text)
        return response

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.backend.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # shortcuts

    def create_source(self, source_type: str, payload: dict[str, Any], **extra: Any) -> str:
        response = self.post(SOURCES, {"source_type": source_type, "payload": payload, **extra})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def source(self, source_id: str) -> dict[str, Any]:
        response = self.get(f"{SOURCES}{source_id}/")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def schema_by_name(self, source_id: str, name: str) -> dict[str, Any]:
        return next(schema for schema in self.source(source_id)["schemas"] if schema["name"] == name)

    def assert_no_secret_leaked(self) -> None:
        leaked = [body for body in self.bodies if CANARY_PASSWORD in body]
        assert not leaked, f"the canary password appeared in {len(leaked)} response(s)"


@pytest.fixture
def backend(home: Path) -> Iterator[EmbeddedBackend]:
    instance = EmbeddedBackend(home, run_scheduler=False)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def api(backend: EmbeddedBackend, caplog: pytest.LogCaptureFixture) -> Iterator[Api]:
    caplog.set_level(logging.DEBUG, logger="warehouse_mcp")
    client = Api(backend)
    yield client
    client.assert_no_secret_leaked()
    assert CANARY_PASSWORD not in caplog.text, "the canary password was logged"


def message(response: httpx.Response) -> str:
    """The error text of either answer shape."""
    body = response.json()
    return str(body.get("message") or body.get("detail"))


def assert_message(response: httpx.Response, text: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"message": text}


def assert_drf(response: httpx.Response, detail: str, *, attr: str | None = None, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "code", "detail", "attr"}, body
    assert body["detail"] == detail
    assert body["attr"] == attr
    assert body["type"] == ("validation_error" if status == 400 else body["type"])


# --- source databases ------------------------------------------------------------------------------

PG_TABLES = (
    "CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(10,2), note text, updated_at timestamptz)",
    "CREATE TABLE events (seq bigint, created_at timestamp, payload jsonb)",
    "INSERT INTO orders VALUES (1, 9.50, 'first', now()), (2, 3.25, 'second', now())",
)
MY_TABLES = (
    "CREATE TABLE customers (id int PRIMARY KEY, name varchar(50), modified_at datetime)",
    "CREATE TABLE logs (line text)",
    "INSERT INTO customers VALUES (1, 'Ada', NOW())",
)


@pytest.fixture(scope="module")
def shared_pg() -> Iterator[Database]:
    """One Postgres database (with PG_TABLES) for a whole module's tests that only read it.

    Creating and dropping a database costs most of a test's time; tests that change the source
    database use the per-test `postgres_db` instead.
    """
    with fresh_postgres() as database:
        yield pg_with_tables(database)


def pg_with_tables(db: Database) -> Database:
    db.execute(*PG_TABLES)
    return db


def my_with_tables(db: Database) -> Database:
    db.execute(*MY_TABLES)
    return db


def orders_schema(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "should_sync": True,
        "sync_type": "incremental",
        "incremental_field": "updated_at",
        "incremental_field_type": "timestamp",
        **overrides,
    }


def set_schema(backend: EmbeddedBackend, schema_id: str, **columns: Any) -> None:
    """Put a schema into a state a sync would leave (status, table, error) without running one."""
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with backend.store.transaction() as db:
        db.execute(f"UPDATE schemas SET {assignments} WHERE id = ?", (*columns.values(), schema_id))


def land_table(backend: EmbeddedBackend, schema_id: str, name: str = "landed") -> None:
    set_schema(
        backend,
        schema_id,
        table_id=str(uuid.uuid4()),
        table_name=name,
        table_row_count=2,
        table_columns=json.dumps([{"name": "id", "type": "INTEGER"}]),
        last_synced_at=iso(utcnow()),
        status="Completed",
    )


def add_job(backend: EmbeddedBackend, source_id: str, schema_id: str, status: str, created_at: str) -> str:
    job_id = str(uuid.uuid4())
    with backend.store.transaction() as db:
        db.execute(
            "INSERT INTO jobs (id, team_id, source_id, schema_id, status, rows_synced, workflow_run_id, created_at) "
            "VALUES (?, 1, ?, ?, ?, 5, ?, ?)",
            (job_id, source_id, schema_id, status, job_id, created_at),
        )
    return job_id
