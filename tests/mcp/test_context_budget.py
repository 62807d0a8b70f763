"""The tool list's context cost stays within budget (README "Performance"): every conversation pays for it.

Tokens are counted as JSON characters / 4, as `tools/bench.py context` does (it also prints every tool's share).
"""

from __future__ import annotations

import anyio
import pytest

from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

BUDGET_TOKENS = {"all": 8_000, "discovery": 1_500}


@pytest.mark.parametrize("mode", BUDGET_TOKENS)
def test_tools_list_fits_the_budget(mode: str) -> None:
    tools = anyio.run(build_server(Settings(tool_mode=mode)).list_tools)
    characters = sum(len(tool.model_dump_json(by_alias=True, exclude_none=True)) for tool in tools)
    assert characters / 4 <= BUDGET_TOKENS[mode], f"{mode}: {characters / 4:.0f} tokens"
    if mode == "discovery":
        assert len(tools) == 3
