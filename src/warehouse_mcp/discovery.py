"""Discovery mode (`WAREHOUSE_MCP_TOOL_MODE=discovery`): three tools instead of one per operation.

search finds operations, schema shows one, call runs one exactly as its own tool would: the same argument
checks and errors, secret refusal, flows (URL elicitation for the connect link, progress while waiting) and
structured answer. Only the operations the toolsets and read-only setting allow are found or run.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import Field

from .arguments import BadArguments, CatalogTool, validate
from .operations import BY_TOOL, Args, Operation
from .tool_schemas import input_model, input_schema

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime

SEARCH = "data-warehouse-operations-search"
SCHEMA = "data-warehouse-operation-schema"
CALL = "data-warehouse-operation-call"

DISCOVERY_INSTRUCTIONS = (
    f"The operations named above are not listed as tools: find them with {SEARCH}, read one with {SCHEMA} "
    f"and run it with {CALL}."
)

Runner = Callable[[Operation, Args, "Context", "Runtime"], Awaitable[CallToolResult | InputRequiredResult]]


class SearchArgs(Args):
    query: str = Field(
        "", description="Words to match, e.g. 'connect postgres' or 'sync status'; empty: all."
    )


class SchemaArgs(Args):
    operation: str = Field(description=f"Operation name from {SEARCH}.")


class CallArgs(SchemaArgs):
    arguments: dict[str, Any] = Field(
        default_factory=dict, description=f"The operation's arguments, as {SCHEMA} describes them."
    )


def discovery_tools(operations: Sequence[Operation], runtime: Runtime, run: Runner) -> list[Tool]:
    allowed = {op.tool: op for op in operations}

    async def search(args: SearchArgs, ctx: Context) -> CallToolResult:
        found = [_summary(op) for op in matching(operations, args.query)]
        return _answer({"results": found, "count": len(found)})

    async def schema(args: SchemaArgs, ctx: Context) -> CallToolResult:
        op = allowed.get(args.operation)
        if op is None:
            return _error(_unavailable(args.operation, runtime, allowed))
        return _answer(
            {
                **_summary(op),
                "description": op.description,
                "input_schema": input_schema(input_model(op, runtime.settings)),
            }
        )

    async def call(args: CallArgs, ctx: Context) -> CallToolResult | InputRequiredResult:
        op = allowed.get(args.operation)
        if op is None:
            return _error(_unavailable(args.operation, runtime, allowed))
        try:
            validated = validate(op.tool, input_model(op, runtime.settings), args.arguments)
        except BadArguments as exc:
            return _error(str(exc))
        return await run(op, validated, ctx, runtime)

    only_reads = all(op.read_only for op in operations)
    return [
        _tool(
            search,
            SEARCH,
            "Find warehouse operations",
            "Find operations (connect sources, tables and sync settings, jobs, CDC, webhooks) by words: name, "
            f"title, summary, read-only/destructive. Next: {SCHEMA}, then {CALL}.",
            SearchArgs,
            {"type": "object", "properties": {"results": {"type": "array"}, "count": {"type": "integer"}}},
            ToolAnnotations(read_only_hint=True, open_world_hint=False),
        ),
        _tool(
            schema,
            SCHEMA,
            "Describe an operation",
            f"Description and input schema of one operation found by {SEARCH}. Next: {CALL}.",
            SchemaArgs,
            {"type": "object"},
            ToolAnnotations(read_only_hint=True, open_world_hint=False),
        ),
        _tool(
            call,
            CALL,
            "Run an operation",
            f"Run one operation with its arguments, exactly as its own tool would: same checks, answer and "
            f"errors. Read its schema with {SCHEMA} first. Destructive operations: confirm with the user.",
            CallArgs,
            {"type": "object"},
            ToolAnnotations(read_only_hint=True)
            if only_reads
            else ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
        ),
    ]


def matching(operations: Sequence[Operation], query: str) -> list[Operation]:
    """Operations whose text holds the query's words, best first (catalog order among equals). A word found
    in the name counts more, and a word most operations share ("data", "source") counts less."""
    words = [word.rstrip("s") for word in re.findall(r"[a-z0-9]+", query.lower()) if len(word) > 1]
    if not words:
        return list(operations)
    names = [re.sub(r"^(external-data-|data-warehouse-)", "", op.tool).replace("-", " ") for op in operations]
    texts = [
        (name, f"{name} {op.title} {op.description} {op.toolset}".lower())
        for name, op in zip(names, operations, strict=True)
    ]
    rarity = {
        word: math.log((len(texts) + 1) / (1 + sum(word in text for _, text in texts))) for word in words
    }
    scored = []
    for index, (op, (name, text)) in enumerate(zip(operations, texts, strict=True)):
        score = sum((3 if word in name else 1) * rarity[word] for word in words if word in text)
        if score > 0:
            scored.append((-score, index, op))
    return [op for _, _, op in sorted(scored, key=lambda item: item[:2])]


def _summary(op: Operation) -> dict[str, Any]:
    return {
        "name": op.tool,
        "title": op.title,
        "summary": op.description.split(". ")[0].rstrip(".") + ".",
        "read_only": op.read_only,
        "destructive": op.destructive,
    }


def _unavailable(name: str, runtime: Runtime, allowed: dict[str, Operation]) -> str:
    op = BY_TOOL.get(name)
    settings = runtime.settings
    if op is None:
        close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"Unknown operation {name!r}.{hint} Find operations with {SEARCH}."
    if settings.read_only and not op.read_only:
        return f"{name} writes, and this server is read-only (WAREHOUSE_MCP_READ_ONLY): it cannot run here."
    return (
        f"{name} belongs to the {op.toolset} toolset, which this server does not enable "
        f"(WAREHOUSE_MCP_TOOLSETS={','.join(settings.toolsets)})."
    )


def _tool(
    fn: Callable[..., Awaitable[Any]],
    name: str,
    title: str,
    description: str,
    model: type[Args],
    output_schema: dict[str, Any],
    hints: ToolAnnotations,
) -> Tool:
    return CatalogTool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=input_schema(model),
        fn_metadata=FuncMetadata(arg_model=model, output_schema=output_schema),
        is_async=True,
        context_kwarg="ctx",
        annotations=hints,
    )


def _answer(content: dict[str, Any]) -> CallToolResult:
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=content)


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
