"""data-warehouse-sync-wait: poll a source until its syncs finish, with progress, built on two API reads.

It only uses documented operations (retrieve the source, list its jobs), so it works against PostHog and the
embedded backend alike. A table counts as still syncing while its schema or newest job says Running, or
while it is enabled for a polled sync type and has no job yet (a sync that was just requested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .client import ApiError
from .operation_requests import project_of, send
from .operations import BY_TOOL, Args, Operation

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime

RETRIEVE = BY_TOOL["external-data-sources-retrieve"]
JOBS = BY_TOOL["external-data-sources-jobs-retrieve"]
PUSHED_SYNC_TYPES = ("webhook", "cdc")  # fed by the source, never "finish"


async def wait_for_sync(op: Operation, args: Args, ctx: Context, runtime: Runtime) -> dict[str, Any]:
    source_id: str = args.source_id  # type: ignore[attr-defined]
    schema_id: str | None = args.schema_id  # type: ignore[attr-defined]
    project = project_of(args, runtime)
    poll = 0.25 if runtime.settings.backend == "embedded" else 3.0
    deadline = anyio.current_time() + args.timeout_seconds  # type: ignore[attr-defined]
    reported = -1
    while True:
        source = await send(RETRIEVE, RETRIEVE.model(id=source_id), runtime, project)  # type: ignore[call-arg]
        jobs = await send(JOBS, JOBS.model(id=source_id), runtime, project)  # type: ignore[call-arg]
        tables = _tables_in_scope(source, schema_id, source_id)
        newest = _newest_job_per_schema(jobs["results"])
        running = [table for table in tables if _still_syncing(table, newest.get(table["id"]))]
        finished = [newest[table["id"]] for table in tables if table not in running and table["id"] in newest]
        rows = sum(_count(job.get("rows_synced")) for job in newest.values() if _in(job, tables))
        done = len(tables) - len(running)
        if rows > reported:
            reported = rows
            await ctx.report_progress(rows, None, f"{done} of {len(tables)} tables done, {rows} rows synced")
        timed_out = anyio.current_time() >= deadline
        if not running or timed_out:
            return {
                "done": not running,
                "source_status": source.get("status"),
                "tables_done": done,
                "tables_total": len(tables),
                "rows_synced": rows,
                "jobs": finished,
                "still_running": [table["name"] for table in running],
                "next": "Call data-warehouse-sync-wait again to keep waiting."
                if running
                else "Check failed jobs' latest_error; query the synced tables.",
            }
        await anyio.sleep(poll)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _tables_in_scope(source: dict[str, Any], schema_id: str | None, source_id: str) -> list[dict[str, Any]]:
    listed = source.get("schemas")
    schemas = (
        [s for s in listed if isinstance(s, dict) and isinstance(s.get("id"), str)]
        if isinstance(listed, list)
        else []
    )
    if schema_id is None:
        return [schema for schema in schemas if schema.get("should_sync")]
    chosen = [schema for schema in schemas if schema.get("id") == schema_id]
    if not chosen:
        raise ApiError(404, f"Schema {schema_id} is not a table of source {source_id}.", attr="schema_id")
    return chosen


def _newest_job_per_schema(jobs: list[Any]) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for job in jobs:  # the API lists newest first
        schema = job.get("schema") if isinstance(job, dict) else None
        if isinstance(schema, dict) and isinstance(schema.get("id"), str):
            newest.setdefault(schema["id"], job)
    return newest


def _still_syncing(table: dict[str, Any], job: dict[str, Any] | None) -> bool:
    if table.get("status") == "Running" or (job is not None and job.get("status") == "Running"):
        return True
    never_ran = job is None and table.get("last_synced_at") is None
    return bool(table.get("should_sync")) and never_ran and table.get("sync_type") not in PUSHED_SYNC_TYPES


def _in(job: dict[str, Any], tables: list[dict[str, Any]]) -> bool:
    schema_id = job["schema"]["id"]
    return any(table["id"] == schema_id for table in tables)
