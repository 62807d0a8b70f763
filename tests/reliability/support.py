"""Shared pieces of the reliability suite: MCP clients driven from sync code, answer checks, processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.types import CallToolResult, Tool

from tests.conftest import free_port

BIN = str(Path(sys.executable).with_name("warehouse-mcp"))
VALIDATION = re.compile(r": \d+ validation errors? for ")


def result_text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def crash_reason(tool: str, result: CallToolResult, *, api_500_is_crash: bool = True) -> str | None:
    """Why `result` is not a proper answer (None when it is one).

    A proper answer is a result, or an error with a message that says something. The SDK's generic
    `Error executing tool X` (no detail, or wrapping another generic one) means an unexpected exception;
    `HTTP 500` from the embedded API means a handler crashed on the input.
    """
    text = result_text(result)
    if not result.is_error:
        return None
    if not text.strip():
        return "an error result without a message"
    prefix = f"Error executing tool {tool}"
    if text.startswith(prefix) and not VALIDATION.match(text[len(prefix) :]):
        return f"an unexpected exception in the tool: {text[:300]!r}"
    if api_500_is_crash and "(HTTP 500" in text:
        return f"the API crashed (500): {text[:300]!r}"
    return None


@dataclass
class SyncClient:
    """An MCP client whose calls can be made from plain (sync) code such as hypothesis tests."""

    portal: BlockingPortal
    client: Client
    tools: dict[str, Tool] = field(default_factory=dict)

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments)

    def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.call(tool, arguments)
        assert not result.is_error, (tool, result_text(result))
        return result.structured_content or {}


@contextmanager
def sync_client(server: Any, **options: Any) -> Iterator[SyncClient]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(server, **options)) as client,
    ):
        tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
        yield SyncClient(portal, client, tools)


def server_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "WAREHOUSE_MCP_HOME": str(home),
        "WAREHOUSE_MCP_ALLOW_INLINE_SECRETS": "1",
        **extra,
    }


def start_http_server(
    env: dict[str, str], stderr: Any = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], str]:
    """`warehouse-mcp --transport http` on a free loopback port; returns (process, MCP url) once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [BIN, "--transport", "http", "--port", str(port)], env=env, stderr=stderr, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"warehouse-mcp exited with {process.returncode} before serving")
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.5)
            return process, f"http://127.0.0.1:{port}/mcp"
        except httpx.TransportError:
            time.sleep(0.1)
    kill_hard(process)
    raise AssertionError("warehouse-mcp did not start serving within 30 s")


def kill_hard(process: subprocess.Popen[Any]) -> None:
    """`kill -9` the process (only ever one this suite started) and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(30)


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            kill_hard(process)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `needle` (plaintext secret scan)."""
    return [path for path in sorted(root.rglob("*")) if path.is_file() and needle in path.read_bytes()]
