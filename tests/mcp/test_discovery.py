"""Discovery mode: three tools (search, schema, call) that reach every allowed operation and run it exactly as
its own tool would, through the MCP client in both protocol generations."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ElicitRequestURLParams, ElicitResult

from tests.conftest import Database
from tests.fakes.recording_api import RecordingApi, Reply
from warehouse_mcp.harness import complete_connect_page
from warehouse_mcp.operations import OPERATIONS
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

pytestmark = pytest.mark.anyio
MODES = pytest.mark.parametrize("mode", ["legacy", "auto"])
SEARCH, SCHEMA, CALL = (
    "data-warehouse-operations-search",
    "data-warehouse-operation-schema",
    "data-warehouse-operation-call",
)
SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


def posthog(url: str, **extra: Any) -> Settings:
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_k", "POSTHOG_HOST": url, "POSTHOG_PROJECT_ID": "42"}
    return Settings.from_env(env, **extra)


def test_the_mode_comes_from_the_environment_and_is_checked() -> None:
    assert Settings.from_env({"WAREHOUSE_MCP_TOOL_MODE": "Discovery"}).tool_mode == "discovery"
    assert Settings.from_env({}).tool_mode == "all"
    with pytest.raises(ValueError, match="WAREHOUSE_MCP_TOOL_MODE must be 'all'"):
        Settings.from_env({"WAREHOUSE_MCP_TOOL_MODE": "few"})


@MODES
async def test_exactly_three_tools_and_search_finds_operations(api: RecordingApi, mode: str) -> None:
    async with Client(build_server(posthog(api.url, tool_mode="discovery")), mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        everything = (await client.call_tool(SEARCH, {})).structured_content
        found = (await client.call_tool(SEARCH, {"query": "delete table data"})).structured_content
        described = (
            await client.call_tool(SCHEMA, {"operation": "external-data-schemas-partial-update"})
        ).structured_content
    assert sorted(names) == sorted([SEARCH, SCHEMA, CALL])
    assert [item["name"] for item in everything["results"]] == [op.tool for op in OPERATIONS]
    first = found["results"][0]
    assert first["name"] == "external-data-schemas-delete-data-destroy"
    assert first["destructive"] is True and first["read_only"] is False and first["summary"]
    assert described["input_schema"]["properties"]["sync_type"]["enum"][0] == "full_refresh"
    assert "id" in described["input_schema"]["required"]
    assert api.requests == []


@MODES
async def test_call_answers_exactly_as_the_direct_tool(api: RecordingApi, mode: str) -> None:
    api.default = Reply(200, {"id": SID, "status": "Running", "schemas": []})
    async with Client(build_server(posthog(api.url)), mode=mode) as direct_client:
        direct = await direct_client.call_tool("external-data-sources-retrieve", {"id": SID})
        direct_bad = await direct_client.call_tool(
            "external-data-schemas-partial-update", {"id": SID, "sync_type": "x"}
        )
        direct_secret = await direct_client.call_tool(
            "external-data-sources-create",
            {"source_type": "Postgres", "payload": {"password": "hunter2hunter2", "schemas": []}},
        )
    async with Client(build_server(posthog(api.url, tool_mode="discovery")), mode=mode) as client:
        via = await client.call_tool(
            CALL, {"operation": "external-data-sources-retrieve", "arguments": {"id": SID}}
        )
        via_bad = await client.call_tool(
            CALL,
            {"operation": "external-data-schemas-partial-update", "arguments": {"id": SID, "sync_type": "x"}},
        )
        via_secret = await client.call_tool(
            CALL,
            {
                "operation": "external-data-sources-create",
                "arguments": {
                    "source_type": "Postgres",
                    "payload": {"password": "hunter2hunter2", "schemas": []},
                },
            },
        )
    assert not via.is_error and via.structured_content == direct.structured_content
    assert [(r.method, r.path) for r in api.requests] == [
        ("GET", f"/api/projects/42/external_data_sources/{SID}/")
    ] * 2
    assert via_bad.is_error and via_bad.content[0].text == direct_bad.content[0].text
    assert "sync_type" in via_bad.content[0].text and "Example" in via_bad.content[0].text
    assert via_secret.is_error and via_secret.content[0].text == direct_secret.content[0].text
    assert "hunter2hunter2" not in via_secret.model_dump_json()
    assert "data-warehouse-source-connect-link" in via_secret.content[0].text


async def test_read_only_and_toolsets_limit_what_search_finds_and_call_runs(api: RecordingApi) -> None:
    settings = posthog(api.url, tool_mode="discovery", read_only=True, toolsets=("sources", "webhooks"))
    async with Client(build_server(settings)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        found = (await client.call_tool(SEARCH, {"query": ""})).structured_content["results"]
        writes = await client.call_tool(
            CALL, {"operation": "external-data-sources-destroy", "arguments": {"id": SID}}
        )
        elsewhere = await client.call_tool(CALL, {"operation": "external-data-schemas-list", "arguments": {}})
        unknown = await client.call_tool(SCHEMA, {"operation": "external-data-source-list"})
    expected = {op.tool for op in OPERATIONS if op.read_only and op.toolset in ("sources", "webhooks")}
    assert {item["name"] for item in found} == expected
    assert tools[CALL].annotations.read_only_hint is True
    assert writes.is_error and "read-only" in writes.content[0].text
    assert elsewhere.is_error and "schemas toolset" in elsewhere.content[0].text
    assert unknown.is_error and "Did you mean external-data-sources-list" in unknown.content[0].text
    assert api.requests == []


@pytest.mark.postgres
@MODES
async def test_connect_flow_setup_and_wait_through_call(
    postgres_db: Database, tmp_path: Path, mode: str
) -> None:
    """URL elicitation for the connect link (mid-call in 2025-11-25, input_required + retry in 2026-07-28), then
    setup with the credential and a wait that reports progress: all through data-warehouse-operation-call."""
    postgres_db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, email text)",
        "INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 500) g",
    )
    elicited: list[ElicitRequestURLParams] = []

    async def user(context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams)
        elicited.append(params)
        await anyio.to_thread.run_sync(complete_connect_page, params.url, postgres_db.config)
        return ElicitResult(action="accept")

    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    settings = Settings(
        backend="embedded", home=tmp_path / "home", tool_mode="discovery", connect_wait_seconds=30
    )
    async with Client(build_server(settings), mode=mode, elicitation_callback=user) as client:
        connected = await client.call_tool(
            CALL,
            {"operation": "data-warehouse-source-connect-link", "arguments": {"source_type": "Postgres"}},
        )
        assert not connected.is_error, connected.content
        assert connected.structured_content["status"] == "connected"
        credential = connected.structured_content["credential_id"]
        made = await client.call_tool(
            CALL,
            {
                "operation": "data-warehouse-source-setup",
                "arguments": {"source_type": "Postgres", "payload": {"credential_id": credential}},
            },
        )
        source_id = made.structured_content["id"]
        waited = await client.call_tool(
            CALL,
            {
                "operation": "data-warehouse-sync-wait",
                "arguments": {"source_id": source_id, "timeout_seconds": 60},
            },
            progress_callback=on_progress,
        )
    assert len(elicited) == 1 and "/connect/" in elicited[0].url
    assert waited.structured_content["done"] is True and waited.structured_content["rows_synced"] == 500
    assert progress and progress[-1] == 500


async def test_the_command_line_flag_selects_discovery_mode(tmp_path: Path) -> None:
    command = str(Path(sys.executable).with_name("warehouse-mcp"))
    env = {"PATH": os.environ["PATH"], "WAREHOUSE_MCP_HOME": str(tmp_path / "home")}
    params = StdioServerParameters(command=command, args=["--tool-mode", "discovery"], env=env)
    async with Client(params) as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        instructions = client.instructions or ""
    assert names == sorted([SEARCH, SCHEMA, CALL])
    assert SEARCH in instructions
