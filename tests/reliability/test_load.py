"""Load: 200 concurrent tool calls over streamable HTTP against one `warehouse-mcp --transport http` process
on the embedded backend, a quarter of them writes that create Postgres sources. No call may fail and no
write may be lost: every created source is listed afterwards, exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import Database
from tests.reliability.support import result_text, server_env, start_http_server, stop

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.anyio]

CALLS = 200
WRITES = 50
CLIENTS = 10  # half on the 2025-11-25 protocol (sessions), half on 2026-07-28 (stateless requests)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    log = (tmp_path / "server.log").open("wb")
    process, url = start_http_server(server_env(tmp_path / "home"), stderr=log)
    try:
        yield url
    finally:
        stop(process)
        log.close()


def seed(db: Database) -> None:
    db.execute(
        "CREATE TABLE accounts (id serial PRIMARY KEY, name text, updated_at timestamptz DEFAULT now())",
        "CREATE TABLE audit (what text)",
    )


def create_call(db: Database, prefix: str) -> tuple[str, dict[str, Any]]:
    payload = {**db.config, "schemas": [{"name": "accounts", "should_sync": False}]}
    return "external-data-sources-create", {"source_type": "Postgres", "prefix": prefix, "payload": payload}


def read_calls(db: Database) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("external-data-sources-list", {"limit": 100}),
        ("external-data-schemas-list", {"search": "acc"}),
        ("external-data-sources-wizard-retrieve", {"source_type": "Postgres"}),
        ("data-warehouse-stored-credentials-list", {"source_type": "Postgres"}),
        ("external-data-sources-connections-list", {}),
        ("external-data-sources-source-prefix-create", {"source_type": "Postgres", "prefix": "free_prefix"}),
        ("external-data-sources-database-schema-create", {"source_type": "Postgres", "config": db.config}),
    ]


async def run_all(url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    """Spread `calls` over CLIENTS clients and fire them all at once; returns (tool, result or exception)."""
    outcomes: list[tuple[str, Any]] = []

    async def one(client: Client, tool: str, arguments: dict[str, Any]) -> None:
        try:
            outcomes.append((tool, await client.call_tool(tool, arguments)))
        except Exception as exc:  # a protocol or transport failure is an outcome to report, not a crash
            outcomes.append((tool, exc))

    async def session(index: int, share: list[tuple[str, dict[str, Any]]]) -> None:
        mode = "legacy" if index % 2 else "auto"
        async with (
            Client(url, mode=mode, read_timeout_seconds=120) as client,
            anyio.create_task_group() as group,
        ):
            for tool, arguments in share:
                group.start_soon(one, client, tool, arguments)

    async with anyio.create_task_group() as group:
        for index in range(CLIENTS):
            group.start_soon(session, index, calls[index::CLIENTS])
    return outcomes


def failures(outcomes: list[tuple[str, Any]]) -> list[str]:
    bad = []
    for tool, outcome in outcomes:
        if isinstance(outcome, Exception):
            bad.append(f"{tool}: {type(outcome).__name__}: {outcome}")
        elif outcome.is_error:
            bad.append(f"{tool}: {result_text(outcome)[:300]}")
    return bad


def created_ids(outcomes: list[tuple[str, Any]]) -> set[str]:
    return {
        outcome.structured_content["id"]
        for tool, outcome in outcomes
        if tool == "external-data-sources-create"
        and not isinstance(outcome, Exception)
        and not outcome.is_error
    }


async def check_no_write_lost(url: str, created: set[str], prefixes: list[str]) -> None:
    """Every acknowledged source is listed, exactly once, whole (both tables of the database)."""
    async with Client(url) as client:
        listed = await client.call_tool("external-data-sources-list", {"limit": 1000})
        schemas = await client.call_tool("external-data-schemas-list", {"limit": 1000})
    assert not listed.is_error and not schemas.is_error
    sources = listed.structured_content["results"]
    assert listed.structured_content["count"] == len(created)
    assert {source["id"] for source in sources} == created
    assert sorted(source["prefix"] for source in sources) == sorted(prefixes)
    assert schemas.structured_content["count"] == 2 * len(created)
    assert all(
        {schema["name"] for schema in source["schemas"]} == {"accounts", "audit"} for source in sources
    )


async def test_200_concurrent_calls_lose_no_write(server: str, postgres_db: Database) -> None:
    seed(postgres_db)
    prefixes = [f"load_{index:03d}" for index in range(WRITES)]
    reads = read_calls(postgres_db)
    calls = [create_call(postgres_db, prefix) for prefix in prefixes]
    calls += [reads[index % len(reads)] for index in range(CALLS - WRITES)]
    random.Random(7).shuffle(calls)

    outcomes = await run_all(server, calls)

    assert len(outcomes) == CALLS
    assert failures(outcomes) == []
    created = created_ids(outcomes)
    assert len(created) == WRITES
    await check_no_write_lost(server, created, prefixes)


async def test_guard_the_load_checks_see_a_failed_call_and_a_lost_write(
    server: str, postgres_db: Database
) -> None:
    """Break each guarantee on purpose: a refused write (a taken prefix) and a write lost afterwards."""
    seed(postgres_db)
    outcomes = await run_all(server, [create_call(postgres_db, prefix) for prefix in ("a", "b", "c")])
    refused = await run_all(server, [create_call(postgres_db, "a")])
    assert failures(outcomes) == []
    assert failures(refused) and "Prefix already exists" in failures(refused)[0]
    created = created_ids(outcomes)
    await check_no_write_lost(server, created, ["a", "b", "c"])
    async with Client(server) as client:  # "lose" one acknowledged write
        await client.call_tool("external-data-sources-destroy", {"id": sorted(created)[0]})
    with pytest.raises(AssertionError):
        await check_no_write_lost(server, created, ["a", "b", "c"])


async def test_concurrent_creates_with_one_prefix_create_one_source(
    server: str, postgres_db: Database
) -> None:
    seed(postgres_db)
    outcomes = await run_all(server, [create_call(postgres_db, "racy")] * 8)
    succeeded = [
        outcome for _, outcome in outcomes if not isinstance(outcome, Exception) and not outcome.is_error
    ]
    assert len(succeeded) == 1, f"{len(succeeded)} sources were created with prefix 'racy'"
