"""Render the README's tool table from the operation catalog: `python tools/gen_readme_table.py [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path

from warehouse_mcp.operations import OPERATIONS

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- tools:start -->", "<!-- tools:end -->"


def table() -> str:
    rows = ["| tool | toolset | kind | method and path | what it does |", "|---|---|---|---|---|"]
    for op in OPERATIONS:
        route = "composite (retrieve + jobs)" if op.composite else f"`{op.method} {op.path}`"
        first_sentence = op.description.split(". ")[0].rstrip(".") + "."
        rows.append(f"| `{op.tool}` | {op.toolset} | {op.kind} | {route} | {first_sentence} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    current = README.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        if current != wanted:
            print(
                "README.md's tool table is out of date: run python tools/gen_readme_table.py", file=sys.stderr
            )
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
