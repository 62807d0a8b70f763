"""What a model reads about each tool, kept lean: every character of `tools/list` is paid for in every
conversation (README "Performance": the budget is 8,000 tokens for all tools)."""

from __future__ import annotations

from typing import Any

from mcp.types import ToolAnnotations
from pydantic import Field, create_model

from .operations import Args, Operation
from .settings import Settings

# An enum this long costs more context than it helps: shown as a plain string whose description gives
# examples; the validator still checks it and its error lists every allowed value.
LONG_ENUM = 12


def input_model(op: Operation, settings: Settings) -> type[Args]:
    """The operation's arguments, plus `project_id` unless the project is pinned."""
    if settings.project_id:
        return op.model
    project = Field(
        None, pattern=r"^([0-9]{1,18}|@current)$", description=f"Project id; default {settings.project}."
    )
    return create_model(op.model.__name__, __base__=op.model, project_id=(str | None, project))


def input_schema(model: type[Args]) -> dict[str, Any]:
    """The schema shown in `tools/list`. The validator stays stricter than what is shown: it refuses unknown
    arguments and checks `project_id`'s pattern, with errors that name the field and show an example."""
    raw = model.model_json_schema()
    schema: dict[str, Any] = compact_schema(raw, raw.get("$defs", {}))
    schema.pop("additionalProperties", None)
    schema.get("properties", {}).get("project_id", {}).pop("pattern", None)
    return schema


def compact_schema(schema: Any, defs: dict[str, Any]) -> Any:
    """Pydantic's schema minus what costs context and tells a model nothing: titles, `$defs` (inlined: each is
    used once), `anyOf [T, null]` on optional fields (leaving a field out already means "not given"), the
    description of an enum type when the field has its own, `additionalProperties: true` (the default)."""
    if isinstance(schema, list):
        return [compact_schema(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = dict(defs[ref.removeprefix("#/$defs/")])
        if "description" in schema:
            target.pop("description", None)
        return compact_schema({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "$defs") or (key == "additionalProperties" and value is True):
            continue
        if key == "properties":  # property names may be "title": keep them
            out[key] = {name: compact_schema(prop, defs) for name, prop in value.items()}
        else:
            out[key] = compact_schema(value, defs)
    any_of = out.get("anyOf")
    if (
        isinstance(any_of, list)
        and len(any_of) == 2
        and {"type": "null"} in any_of
        and out.get("default", 0) is None
    ):
        (kept,) = [branch for branch in any_of if branch != {"type": "null"}]
        del out["anyOf"], out["default"]
        out = {**kept, **out}
    if isinstance(out.get("enum"), list) and len(out["enum"]) > LONG_ENUM:
        del out["enum"]
    return out


def tool_annotations(op: Operation) -> ToolAnnotations:
    """Hints at their spec default are left out: open world is the default, and the destructive and idempotent
    hints mean something only for tools that write."""
    if op.read_only:
        return ToolAnnotations(read_only_hint=True)
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=op.destructive, idempotent_hint=op.idempotent
    )
