"""Toolsets choose tools, read-only wins over everything, and the guide resources and prompts are served."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from tests.fakes.recording_api import RecordingApi, Reply
from warehouse_mcp.operations import OPERATIONS
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


def settings(url: str, **extra: object) -> Settings:
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_k", "POSTHOG_HOST": url, "POSTHOG_PROJECT_ID": "42"}
    return Settings.from_env(env, **extra)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_read_only_lists_only_read_only_tools_and_refuses_writes(api: RecordingApi, mode: str) -> None:
    async with Client(build_server(settings(api.url, read_only=True)), mode=mode) as client:
        tools = (await client.list_tools()).tools
        refused = await client.call_tool("external-data-sources-destroy", {"id": "x"})
    assert tools and all(tool.annotations.read_only_hint for tool in tools)
    assert {tool.name for tool in tools} == {op.tool for op in OPERATIONS if op.read_only}
    assert refused.is_error and "external-data-sources-destroy" in refused.content[0].text
    assert api.requests == []


@pytest.mark.anyio
async def test_toolsets_filter_the_list(api: RecordingApi) -> None:
    async with Client(build_server(settings(api.url, toolsets=("cdc", "webhooks")))) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {op.tool for op in OPERATIONS if op.toolset in ("cdc", "webhooks")}
    assert "external-data-sources-cdc-status-retrieve" in names
    assert "external-data-sources-list" not in names


@pytest.mark.anyio
async def test_read_only_wins_over_toolsets(api: RecordingApi) -> None:
    async with Client(build_server(settings(api.url, toolsets=("webhooks",), read_only=True))) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {"external-data-sources-webhook-info-retrieve"}


def test_toolsets_from_the_environment() -> None:
    loaded = Settings.from_env({"WAREHOUSE_MCP_TOOLSETS": "jobs, schemas", "WAREHOUSE_MCP_READ_ONLY": "1"})
    assert loaded.toolsets == ("jobs", "schemas") and loaded.read_only


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_resources_and_prompts(api: RecordingApi, mode: str) -> None:
    forms = {
        "Postgres": {
            "label": "Postgres",
            "category": "Databases",
            "fields": [{"name": "host"}, {"name": "password"}],
        }
    }
    api.default = Reply(200, forms)
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        listing = json.loads((await client.read_resource("warehouse://source-types")).contents[0].text)
        one = json.loads((await client.read_resource("warehouse://source-types/postgres")).contents[0].text)
        guide = (await client.read_resource("warehouse://guides/connect-flow")).contents[0].text
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        plan = await client.get_prompt("connect-source", {"source_type": "MySQL"})
    assert listing == [
        {
            "source_type": "Postgres",
            "label": "Postgres",
            "category": "Databases",
            "fields": ["host", "password"],
        }
    ]
    assert one["category"] == "Databases"
    assert "data-warehouse-source-connect-link" in guide
    assert prompts == {"connect-source", "diagnose-failing-sync"}
    assert "source_type='MySQL'" in plan.messages[0].content.text


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_unknown_prompt_is_an_invalid_parameter_naming_the_prompts(
    api: RecordingApi, mode: str
) -> None:
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("connect-sauce", {})
    assert refused.value.code == INVALID_PARAMS
    assert (
        refused.value.error.message
        == "Unknown prompt: connect-sauce. Prompts: connect-source, diagnose-failing-sync."
    )
