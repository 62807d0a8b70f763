"""Pytest fixtures for agent test harnesses, registered as the `warehouse_mcp` pytest plugin.

Use them in any project that installs warehouse-mcp:

    @pytest.mark.anyio
    async def test_agent_connects(warehouse_client, warehouse_postgres):
        link = await warehouse_client.call_tool("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        ...

- `warehouse_settings`: harness Settings (embedded backend, fresh temp data dir removed afterwards,
  inline secrets allowed). Override the fixture to change them.
- `warehouse_clock`: a ManualClock driving the scheduler; `warehouse_clock.advance(300)` runs what is due.
- `warehouse_server`: an in-process MCP server built from those settings and that clock.
- `warehouse_client`: an `mcp.Client` connected to it, in both protocol generations (parametrized
  `legacy` and `auto`, i.e. 2025-11-25 and 2026-07-28).
- `warehouse_postgres`: a fresh Postgres database seeded from `WAREHOUSE_MCP_SEED_SQL` (or a small built-in
  fixture: `customers` and `orders`), dropped afterwards; `.fields` is the connect-page input for it.
  The server comes from `WAREHOUSE_MCP_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432/postgres).
- `complete_connect_page(url, fields)` (from warehouse_mcp.harness) completes the connect page over HTTP.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .harness import harness_settings
from .settings import Settings

SEED_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL, plan text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2),
                     created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO customers (email, plan) SELECT 'user' || i || '@example.com', CASE WHEN i % 3 = 0 THEN 'pro' END
  FROM generate_series(1, 50) AS i;
INSERT INTO orders (customer_id, amount) SELECT 1 + i % 50, (i * 1.25)::numeric(10,2) FROM generate_series(1, 200) AS i;
"""


@dataclass
class SeededPostgres:
    """A seeded database; `fields` is what a user would type into the Postgres connect page."""

    dsn: str
    database: str
    fields: dict[str, Any] = field(default_factory=dict)

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql)


@pytest.fixture
def warehouse_settings(tmp_path: Path) -> Settings:
    return harness_settings(home=tmp_path / "warehouse-home")


@pytest.fixture
def warehouse_clock() -> Any:
    from .embedded.sync.scheduler import ManualClock

    return ManualClock()


@pytest.fixture
def warehouse_server(warehouse_settings: Settings, warehouse_clock: Any) -> Any:
    from .runtime import Runtime
    from .server import build_server

    return build_server(warehouse_settings, runtime=Runtime(warehouse_settings, clock=warehouse_clock))


@pytest.fixture(params=["legacy", "auto"])
async def warehouse_client(request: pytest.FixtureRequest, warehouse_server: Any) -> AsyncIterator[Any]:
    from mcp import Client

    async with Client(warehouse_server, mode=request.param) as client:
        yield client


@pytest.fixture
def warehouse_postgres() -> Iterator[SeededPostgres]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    admin_dsn = os.environ.get("WAREHOUSE_MCP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"wmcp_seed_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {admin_dsn} ({exc})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(admin_dsn, dbname=name)
    seed = os.environ.get("WAREHOUSE_MCP_SEED_SQL")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(Path(seed).read_text() if seed else SEED_SQL)
    parts = conninfo_to_dict(dsn)
    fields = {
        "host": parts.get("host", "127.0.0.1"),
        "port": str(parts.get("port", 5432)),
        "database": name,
        "user": parts.get("user", "postgres"),
        "password": parts.get("password")
        or os.environ.get("WAREHOUSE_MCP_TEST_POSTGRES_PASSWORD", "unused-with-trust"),
        "schema": "public",
    }
    try:
        yield SeededPostgres(dsn, name, fields)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
