"""Checking a tool's arguments, and saying in the model's terms what to fix: which field, what was expected,
an example. A rejected value is never repeated (it may be a secret) and no library documentation is linked."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, ValidationError

from .operations import Args

EXAMPLE_ID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
# Examples by field name, where the type alone would give a useless one.
EXAMPLES: dict[str, Any] = {
    "id": EXAMPLE_ID,
    "source_id": EXAMPLE_ID,
    "schema_id": EXAMPLE_ID,
    "credential_id": EXAMPLE_ID,
    "project_id": "1",
    "source_type": "Postgres",
    "prefix": "prod",
    "sync_time_of_day": "03:00:00",
    "after": "2025-01-31T00:00:00Z",
    "before": "2025-01-31T00:00:00Z",
    "incremental_field": "updated_at",
    "primary_key_columns": ["id"],
    "enabled_columns": ["id", "email"],
    "tables": ["public.users"],
    "schemas": ["users"],
    "payload": {"credential_id": EXAMPLE_ID},
    "config": {"host": "db.example.com", "port": 5432, "database": "app", "user": "reader"},
    "query": "sync status",
    "sql": "SELECT count(*) FROM postgres_customers",
    "operation": "external-data-sources-list",
    "arguments": {"id": EXAMPLE_ID},
}
# pydantic's wording for these may carry (part of) the rejected value: say something general instead.
OPAQUE_ERRORS = ("value_error", "assertion_error", "json_invalid")
INVALID_ARGUMENTS = "invalid arguments, nothing was done"


class BadArguments(ValueError):
    """The arguments do not fit the tool; the message says what to fix and repeats no value."""


class CatalogTool(Tool):
    """A tool whose rejected arguments are explained in the model's terms (`explain`), not pydantic's."""

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise ToolError(explain(self.name, self.fn_metadata.arg_model, exc)) from None
        return await super().run(arguments, context, convert_result)


def validate(tool: str, model: type[Args], arguments: dict[str, Any]) -> Args:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise BadArguments(explain(tool, model, exc)) from None


def explain(tool: str, model: type[BaseModel], error: ValidationError) -> str:
    schema = model.model_json_schema()
    lines = [_line(err, schema) for err in error.errors(include_url=False, include_input=False)]
    return f"{tool}: {INVALID_ARGUMENTS}. Fix them and call again:\n" + "\n".join(lines)


def _line(err: Any, schema: dict[str, Any]) -> str:
    loc = [part for part in err["loc"] if part not in ("function-after", "function-before")]
    field = _field_name(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _schema_at(schema, loc[:-1])
        allowed = ", ".join(sorted((parent or {}).get("properties", {}))) or "none"
        where = "this tool" if len(loc) == 1 else f"'{_field_name(loc[:-1])}'"
        return f"- {field}: not an argument of {where}; allowed: {allowed}."
    target = _schema_at(schema, loc) or {}
    if kind == "missing":
        expected = "required"
    elif kind in ("enum", "literal_error"):
        expected = f"one of {err.get('ctx', {}).get('expected', '')}"
    elif kind == "string_pattern_mismatch" and loc == ["project_id"]:
        expected = "a project id: a number, or @current"
    elif kind in OPAQUE_ERRORS:
        expected = "a valid value"
    else:
        message = str(err["msg"]).split(", unable to")[0]
        expected = message.removeprefix("Input should be ").removeprefix("Value should be ")
        expected = expected[0].lower() + expected[1:] if expected else "a valid value"
        if expected.startswith(("greater", "less")):
            expected = "a number " + expected
    description = target.get("description")
    about = f" ({description.rstrip('.')})" if description else ""
    return f"- {field}: expected {expected}{about}. Example: {json.dumps(_example(loc, target))}."


def _field_name(loc: list[Any]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "arguments"


def _schema_at(schema: dict[str, Any], loc: list[Any]) -> dict[str, Any] | None:
    """The JSON schema of the field at `loc` (following $refs, optional wrappers and list items)."""
    defs = schema.get("$defs", {})
    node: Any = schema
    for part in loc:
        node = _resolve(node, defs)
        if isinstance(part, int):
            node = node.get("items") if isinstance(node, dict) else None
        else:
            node = node.get("properties", {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return _resolve(node, defs)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {**defs.get(node["$ref"].rsplit("/", 1)[-1], {}), **node}
    for branch in node.get("anyOf", []):
        if branch != {"type": "null"}:
            return {**_resolve(branch, defs), **{k: v for k, v in node.items() if k != "anyOf"}}
    return node


def _example(loc: list[Any], target: dict[str, Any]) -> Any:
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    kind = target.get("type")
    if name in EXAMPLES and (kind is None or _json_type(EXAMPLES[name]) == kind):
        return EXAMPLES[name]
    if target.get("enum"):
        return target["enum"][0]
    if kind == "integer":
        return target.get("minimum", 1) if target.get("minimum", 1) > 0 else 1
    if kind == "number":
        return target.get("default", 60)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "text"


def _json_type(value: Any) -> str:
    return {list: "array", dict: "object", str: "string", int: "integer", bool: "boolean"}.get(
        type(value), "string"
    )
