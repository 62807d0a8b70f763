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

BIN = str(Path(sys.executable).with_name("warehouse-mcp"))
SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
API_TOOLS = {
    line.split("|")[2].strip()
    for line in (Path(__file__).parents[2].parent / "shared/spec/operations.md").read_text().splitlines()
    if line.startswith("| ") and line.split("|")[1].strip().isdigit()
}


def _env(api_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "POSTHOG_PERSONAL_API_KEY": "phx_transport",
        "POSTHOG_HOST": api_url,
        "POSTHOG_PROJECT_ID": "42",
    }


def test_operations_md_lists_34_tools() -> None:
    assert len(API_TOOLS) == 34


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
    assert names == API_TOOLS | {"data-warehouse-sync-wait"}
    for tool in tools:
        assert tool.description and len(tool.description) > 60, tool.name
        annotations = tool.annotations
        assert annotations is not None
        for hint in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint"):
            assert getattr(annotations, hint) is not None, (tool.name, hint)
        assert tool.input_schema["type"] == "object"
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), (tool.name, name)
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
    enums = {tool.name: tool.input_schema.get("$defs", {}) for tool in tools}
    assert "SyncType" in enums["external-data-schemas-partial-update"]
    assert "SourceType" in enums["data-warehouse-source-setup"]
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
        assert len(tools) == 35
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
            assert len((await client.list_tools()).tools) == 35
    finally:
        process.terminate()
        process.wait(10)


def test_bad_settings_fail_fast_with_a_clear_message(api: RecordingApi) -> None:
    env = {**_env(api.url), "WAREHOUSE_MCP_TOOLSETS": "sources,nonsense"}
    done = subprocess.run([BIN], env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert b"Unknown toolset(s) nonsense" in done.stderr
    assert done.stdout == b""
