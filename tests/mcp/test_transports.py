"""The installed `warehouse-mcp` command, driven by the official MCP client over stdio and streamable HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import free_port
from tests.fakes.recording_api import RecordingApi, Reply
from warehouse_mcp.operations import BY_TOOL

BIN = str(Path(sys.executable).with_name("warehouse-mcp"))
SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
OPERATIONS_DOC = (Path(__file__).resolve().parents[2] / "docs/operations.md").read_text()


def documented_tools(after: str, before: str | None = None) -> set[str]:
    """Tool names in the first column of the tables between two headings of docs/operations.md."""
    section = OPERATIONS_DOC.split(after, 1)[1]
    section = section.split(before, 1)[0] if before else section
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
    cells = [row[2] if row[1].strip().isdigit() else row[1] for row in rows]
    names = {cell.strip() for cell in cells}
    return {name for name in names if name not in ("tool", "#") and not name.startswith("-")}


API_TOOLS = documented_tools("| # | tool |", "Tools beyond")
EXTRA_TOOLS = documented_tools("Tools beyond the API's operations", "Discovery mode")
DISCOVERY_TOOLS = documented_tools("Discovery mode", "Family used")
DEFAULT_HINTS = {
    "read_only_hint": False,
    "destructive_hint": True,
    "idempotent_hint": False,
    "open_world_hint": True,
}


def _env(api_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "POSTHOG_PERSONAL_API_KEY": "phx_transport",
        "POSTHOG_HOST": api_url,
        "POSTHOG_PROJECT_ID": "42",
    }


def test_operations_md_lists_34_api_operations() -> None:
    assert len(API_TOOLS) == 34
    assert EXTRA_TOOLS and DISCOVERY_TOOLS and not (API_TOOLS & EXTRA_TOOLS)


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_lists_every_tool_fully_described(api: RecordingApi, mode: str) -> None:
    params = StdioServerParameters(command=BIN, args=[], env=_env(api.url))
    async with Client(params, mode=mode) as client:
        tools = (await client.list_tools()).tools
        api.reply(Reply(200, {"id": SID, "status": "Running"}))
        result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    names = {tool.name for tool in tools}
    assert names == API_TOOLS | EXTRA_TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 60, tool.name
        op = BY_TOOL[tool.name]
        # Hints left out take their MCP default; those that are sent must say what the catalog says.
        hints = {
            **DEFAULT_HINTS,
            **(tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}),
        }
        assert hints["read_only_hint"] == op.read_only, tool.name
        if not op.read_only:
            assert (hints["destructive_hint"], hints["idempotent_hint"]) == (op.destructive, op.idempotent)
        assert tool.input_schema["type"] == "object"
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), (tool.name, name)
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
    schemas = {tool.name: tool.input_schema["properties"] for tool in tools}
    assert "incremental" in schemas["external-data-schemas-partial-update"]["sync_type"]["enum"]
    assert "Postgres" in schemas["data-warehouse-source-setup"]["source_type"]["description"]
    assert not result.is_error and result.structured_content["status"] == "Running"


def _start_http(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [BIN, "--transport", "http", "--port", str(port), *args], env=env, stderr=subprocess.PIPE
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.2)
            return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(process.stderr.read().decode() if process.stderr else "no output")


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_streamable_http(api: RecordingApi, mode: str) -> None:
    process, port = _start_http(_env(api.url))
    try:
        api.reply(Reply(200, {"id": SID, "status": "Completed"}))
        async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
        assert len(tools) == 37
        assert result.structured_content["status"] == "Completed"
    finally:
        process.terminate()
        process.wait(10)


def test_http_beyond_loopback_needs_a_token(api: RecordingApi) -> None:
    done = subprocess.run(
        [BIN, "--transport", "http", "--host", "0.0.0.0"], env=_env(api.url), capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert b"WAREHOUSE_MCP_HTTP_TOKEN" in done.stderr


@pytest.mark.anyio
async def test_http_token_is_enforced(api: RecordingApi) -> None:
    process, port = _start_http({**_env(api.url), "WAREHOUSE_MCP_HTTP_TOKEN": "tok-123"})
    try:
        refused = httpx.post(f"http://127.0.0.1:{port}/mcp", json={})
        assert refused.status_code == 401
        with pytest.raises(BaseException):  # noqa: B017 - the client surfaces the 401 as a group of errors
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await client.list_tools()
        authorized = httpx2.AsyncClient(headers={"Authorization": "Bearer tok-123"})
        async with Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=authorized)
        ) as client:
            assert len((await client.list_tools()).tools) == 37
    finally:
        process.terminate()
        process.wait(10)


def test_bad_settings_fail_fast_with_a_clear_message(api: RecordingApi) -> None:
    env = {**_env(api.url), "WAREHOUSE_MCP_TOOLSETS": "sources,nonsense"}
    done = subprocess.run([BIN], env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert b"Unknown toolset(s) nonsense" in done.stderr
    assert done.stdout == b""
