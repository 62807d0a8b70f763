"""Tool schema snapshots (like github-mcp-server's `__toolsnaps__`): a change to any tool's name, title,
description, input or output schema or annotations fails here until the snapshot is updated on purpose, so
context-size and contract changes are always deliberate and show up in review as a diff.

Update after a deliberate change: `UPDATE_TOOLSNAPS=1 .venv/bin/python -m pytest tests/mcp/test_toolsnaps.py`
(writes tests/mcp/__toolsnaps__/<tool>.json, removes snapshots of tools that are gone), then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio

from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

SNAPS = Path(__file__).parent / "__toolsnaps__"
UPDATE = os.environ.get("UPDATE_TOOLSNAPS") == "1"
# What every mode lists with default settings (embedded backend, no pinned project, every toolset).
MODES = ("all", "discovery")


def listed_tools() -> dict[str, dict[str, Any]]:
    tools: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        server = build_server(Settings(tool_mode=mode))
        for tool in anyio.run(server.list_tools):
            tools[tool.name] = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    return tools


def render(tool: dict[str, Any]) -> str:
    return json.dumps(tool, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_tool_snapshots_match() -> None:
    tools = listed_tools()
    if UPDATE:
        SNAPS.mkdir(exist_ok=True)
        for stale in SNAPS.glob("*.json"):
            if stale.stem not in tools:
                stale.unlink()
        for name, tool in tools.items():
            (SNAPS / f"{name}.json").write_text(render(tool))
    snapped = {path.stem for path in SNAPS.glob("*.json")}
    hint = "update deliberately with UPDATE_TOOLSNAPS=1 (see this file's docstring)"
    assert sorted(snapped - tools.keys()) == [], f"snapshots of tools that no longer exist: {hint}"
    assert sorted(tools.keys() - snapped) == [], f"tools without a snapshot: {hint}"
    changed = [name for name, tool in tools.items() if (SNAPS / f"{name}.json").read_text() != render(tool)]
    assert changed == [], f"these tools changed: {hint}"
