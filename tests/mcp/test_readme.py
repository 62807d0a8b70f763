"""The README agrees with the catalog (its tool table is generated from it), and the repository stands on its own."""

from __future__ import annotations

import re
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


# A lone clone must stand on its own: no file points at notes that live beside the repository.
OUTSIDE = re.compile(r"\.\./shared|/work/" + r"shared|(?<![\w/])spec/[\w-]+\.md|(?<![\w/])design\.md")
SKIPPED_PARTS = {"node_modules", ".venv", "__pycache__", "build", ".git"}


def test_no_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if not path.is_file() or SKIPPED_PARTS & set(relative.parts) or path.suffix not in TEXT_SUFFIXES:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()[:120]}")
    assert offenders == []


TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".json", ".yml", ".yaml", ".cfg", ".ini", ""}
