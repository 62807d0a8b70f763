"""The embedded backend's layers (docs/architecture.md): imports point down only, and nothing imports in a circle.

Read from the source with `ast`, so imports inside functions count as much as those at the top; only
imports under `if TYPE_CHECKING:` are left out of the cycle check (they never run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "warehouse_mcp"
EMBEDDED = f"{PACKAGE}.embedded"

# Higher layers may import lower ones, never the reverse; `backend` builds everything. The http layer may
# name the backend's type (under TYPE_CHECKING: request.app.state.backend); the domain names only its
# own protocol, domain.services.Services.
LAYERS = {
    f"{EMBEDDED}.backend": 5,
    f"{EMBEDDED}.http": 4,
    f"{EMBEDDED}.domain": 3,
    f"{EMBEDDED}.sync": 2,
    f"{EMBEDDED}.store": 1,
    f"{EMBEDDED}.connectors": 0,
}
TYPE_ONLY_ALLOWED = {(f"{EMBEDDED}.http", f"{EMBEDDED}.backend")}
WEB_LIBRARIES = ("starlette", "uvicorn", "jinja2")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in (SRC / PACKAGE).rglob("*.py")}


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, only under TYPE_CHECKING) for every import statement of `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                )
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, id(node) in type_only))
    return found


def _layer(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def test_imports_point_down_only() -> None:
    wrong = []
    for module in MODULES:
        mine = _layer(module)
        if mine is None:
            continue
        for imported, type_only in _imports(module):
            theirs = _layer(imported)
            if theirs is None or theirs == mine or (type_only and (mine, theirs) in TYPE_ONLY_ALLOWED):
                continue
            if LAYERS[theirs] > LAYERS[mine]:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_only_the_http_layer_imports_web_libraries() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module in MODULES
        if module.startswith(EMBEDDED) and _layer(module) not in (f"{EMBEDDED}.http", f"{EMBEDDED}.backend")
        for imported, _type_only in _imports(module)
        if imported.split(".")[0] in WEB_LIBRARIES
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {
        module: {
            imported for imported, type_only in _imports(module) if imported in MODULES and not type_only
        }
        - {module}
        for module in MODULES
    }
    cycles = [cycle for cycle in _cycles(graph) if len(cycle) > 1]
    assert cycles == []


def test_no_importlib_for_our_own_modules() -> None:
    wrong = [
        str(path.relative_to(SRC))
        for path in MODULES.values()
        if "import_module(" in path.read_text() or "__import__(" in path.read_text()
    ]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_only_connectors_name_a_source_type() -> None:
    """What differs per source type is a connector's capability (connectors/registry.py), not an `if`."""
    from warehouse_mcp.embedded.connectors.registry import RUNNABLE_TYPES

    wrong = [
        f"{module}:{node.lineno} names {node.value!r}"
        for module, path in MODULES.items()
        if module.startswith(EMBEDDED) and _layer(module) != f"{EMBEDDED}.connectors"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in RUNNABLE_TYPES
    ]
    assert wrong == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_layer_exists(layer: str) -> None:
    assert layer in MODULES


METADATA_TABLES = sorted(
    {
        match.group(1)
        for migration in (SRC / PACKAGE / "embedded" / "store" / "migrations").glob("*.sql")
        for match in re.finditer(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", migration.read_text())
    }
)
METADATA_SQL = re.compile(rf"\b(?:FROM|JOIN|UPDATE|INTO)\s+(?:{'|'.join(METADATA_TABLES)})\b")


def test_metadata_tables_are_named_in_sql_only_in_the_store() -> None:
    """SQL on the metadata tables (read from the migrations) lives in store/; other layers call its functions."""
    assert {"sources", "schemas", "jobs"} <= set(METADATA_TABLES)
    wrong = [
        f"{module}:{node.lineno} {node.value[:60]!r}"
        for module, path in MODULES.items()
        if module.startswith(EMBEDDED) and _layer(module) != f"{EMBEDDED}.store"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and METADATA_SQL.search(node.value)
    ]
    assert wrong == []


def _opened_transactions(source: str) -> list[int]:
    """Lines of `source` that call `.transaction(` on anything (a store write)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "transaction"
    ]


def test_http_handlers_leave_store_writes_to_the_domain() -> None:
    """Handlers are thin (read the request, call the domain, answer): what to write, and when, is a rule."""
    wrong = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        if _layer(module) == f"{EMBEDDED}.http"
        for line in _opened_transactions(path.read_text())
    ]
    assert wrong == []


def test_a_handler_opening_a_transaction_is_seen() -> None:
    handler = "def delete(request):\n    with backend.store.transaction() as db:\n        db.execute('x')\n"
    assert _opened_transactions(handler) == [2]


# DRF's field messages: a body's shape is checked by its model in domain/request_bodies.py, nowhere else.
DRF_FIELD_MESSAGE = re.compile(
    r"This field is required|may not be null|Not a valid string|is not a valid choice|Must be a valid "
    r"(boolean|UUID)|Expected a (list|dictionary) of items|no more than \{|may not be empty"
)


def _drf_messages(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and DRF_FIELD_MESSAGE.search(node.value)
    ]


def test_request_shapes_are_validated_once() -> None:
    wrong = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        if module.startswith(EMBEDDED) and module != f"{EMBEDDED}.domain.request_bodies"
        for line in _drf_messages(path.read_text())
    ]
    assert wrong == []
    assert _drf_messages(MODULES[f"{EMBEDDED}.domain.request_bodies"].read_text()), (
        "the pattern still matches"
    )


def test_a_hand_written_shape_check_is_seen() -> None:
    handler = "if not isinstance(value, str):\n    raise Invalid('Not a valid string.', 'prefix')\n"
    assert _drf_messages(handler) == [2]
