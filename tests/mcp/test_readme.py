"""The README's tool table is generated from the catalog; they must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tool_table_matches_the_catalog() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/gen_readme_table.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_every_tool_is_in_the_readme() -> None:
    from warehouse_mcp.operations import OPERATIONS

    readme = (ROOT / "README.md").read_text()
    missing = [op.tool for op in OPERATIONS if f"`{op.tool}`" not in readme]
    assert missing == []
