"""Argument completion (`completion/complete`) for the prompts and resource templates: source types from the
catalog's enumeration, source and table (schema) ids from the API. Declaring the handler declares the
capability."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from .client import ApiError
from .models import SourceType
from .operation_requests import send
from .operations import BY_TOOL

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_VALUES = 100  # the protocol's limit per answer
LISTS = {
    "source_id": BY_TOOL["external-data-sources-list"],
    "schema_id": BY_TOOL["external-data-schemas-list"],
}


def register_completions(server: MCPServer, runtime: Runtime) -> None:
    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name == "source_type":
            return _answer(matching([kind.value for kind in SourceType], argument.value))
        if argument.name in LISTS:
            return _answer(await _ids(runtime, argument.name, argument.value))
        return None


def matching(values: list[str], typed: str) -> list[str]:
    """Values starting with what was typed (any case), then those containing it."""
    typed = typed.lower()
    starts = [value for value in values if value.lower().startswith(typed)]
    return starts + [value for value in values if typed in value.lower() and value not in starts]


async def _ids(runtime: Runtime, argument: str, typed: str) -> list[str]:
    op = LISTS[argument]
    try:
        page = await send(op, op.model(limit=MAX_VALUES), runtime)  # type: ignore[call-arg]
    except ApiError as exc:
        log.info("no completions for %s: %s", argument, exc.message)
        return []
    items: list[Any] = page.get("results", [])
    ids = [str(item["id"]) for item in items if isinstance(item, dict) and item.get("id")]
    return matching(ids, typed)


def _answer(values: list[str]) -> Completion:
    return Completion(values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES)
