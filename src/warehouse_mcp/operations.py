"""The operation catalog: one record per documented External Data API operation, plus the one composite tool.

This is the single source of truth for the MCP tools: name, HTTP method and path, input model (whose JSON
schema is the tool's input schema), how arguments map onto path, query and body, annotations, toolset,
the shape of the answer, and the description a model reads. `server.py` registers tools from it;
`tools/gen_readme_table.py` renders the README's tool table from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import BaseModel, ConfigDict, Field

from .models import (
    AccessMethod,
    CdcManagementMode,
    CdcTableMode,
    CreatedVia,
    IncrementalFieldType,
    SourceType,
    SyncFrequency,
    SyncType,
)

Kind = Literal["read", "write", "idempotent", "destructive"]
Answer = Literal["object", "list", "page", "empty"]


class Args(ArgModelBase):
    """Base of every tool's input model: unknown arguments are refused, and the tool gets the model whole."""

    # hide_input_in_errors: a validation error must never echo an argument, which may be a secret.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, hide_input_in_errors=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        # The SDK passes validated fields to the tool as kwargs; we want the model itself, so that
        # "not given" and "given as null" stay distinguishable (exclude_unset) when building bodies.
        return {"args": self}


class OpenObject(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)


# ---- reusable fields -------------------------------------------------------------------------------

SOURCE_ID = Field(description="Source id (external-data-sources-list).")
SCHEMA_ID = Field(description="Table (schema) id (external-data-schemas-list).")
LIMIT = Field(None, ge=1, le=1000, description="Page size (default 100).")
OFFSET = Field(None, ge=0, description="Results to skip (next page: offset + limit).")


class SchemaChoice(BaseModel):
    """One table to sync, as create's payload.schemas takes it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    name: str = Field(description="Table name exactly as database-schema or wizard discovery returns it.")
    should_sync: bool = Field(description="Sync this table (false: keep it listed but idle).")
    sync_type: SyncType | None = Field(
        None,
        description="full_refresh (replace all), incremental (cursor + upsert), append (cursor, insert only).",
    )
    incremental_field: str | None = Field(None, description="Cursor column; required for incremental/append.")
    incremental_field_type: IncrementalFieldType | None = Field(
        None, description="Type of the cursor column; required for incremental/append."
    )
    primary_key_columns: list[str] | None = Field(
        None, description="Columns that identify a row (upsert key)."
    )
    sync_time_of_day: str | None = Field(None, description="HH:MM:SS in UTC to anchor the schedule.")
    enabled_columns: list[str] | None = Field(None, description="Columns to sync; omit for all.")
    cdc_table_mode: CdcTableMode | None = Field(None, description="CDC only: consolidated, cdc_only or both.")


class CreatePayload(OpenObject):
    """Connection keys of the source's form (flat) plus the tables to sync."""

    schemas: list[SchemaChoice] = Field(
        description="Tables to create, usually all of database-schema's answer."
    )


class SetupPayload(OpenObject):
    """Prefer `credential_id` alone; other keys are the form's non-secret connection fields."""

    credential_id: str | None = Field(
        None,
        description="From data-warehouse-stored-credentials-list after the user finished the connect page.",
    )
    cdc_enabled: bool | None = Field(
        None,
        description="Postgres only, off by default: stream changes (CDC) for tables with a primary key; "
        "setup refuses with the failed prerequisites.",
    )


class SchemaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    id: str = Field(description="Schema UUID; must belong to this source.")
    should_sync: bool | None = Field(None, description="Enable or disable syncing this table.")
    sync_type: SyncType | None = Field(None, description="How the table syncs.")
    incremental_field: str | None = Field(None, description="Cursor column for incremental/append.")
    incremental_field_type: IncrementalFieldType | None = Field(
        None, description="Type of the cursor column."
    )
    sync_frequency: SyncFrequency | None = Field(None, description="How often it syncs; 1min is CDC only.")
    sync_time_of_day: str | None = Field(None, description="HH:MM:SS UTC anchor of the schedule.")
    cdc_table_mode: CdcTableMode | None = Field(None, description="CDC only.")
    enabled_columns: list[str] | None = Field(None, description="Columns to sync; null for all.")


# ---- input models ----------------------------------------------------------------------------------


class Page(Args):
    limit: int | None = LIMIT
    offset: int | None = OFFSET
    search: str | None = Field(None, description="Case-insensitive text filter.")


class SourceRef(Args):
    id: str = SOURCE_ID


class SchemaRef(Args):
    id: str = SCHEMA_ID


class NoArgs(Args):
    pass


class SourceTypeArg(Args):
    source_type: SourceType = Field(description="Source type, e.g. Postgres, MySQL, Stripe.")


class CreateSource(SourceTypeArg):
    payload: CreatePayload = Field(description="Connection fields of the source's form plus `schemas`.")
    prefix: str | None = Field(
        None,
        max_length=100,
        description="Table name prefix; required when a source of this type exists already.",
    )
    description: str | None = Field(None, max_length=400, description="Free text shown in the source list.")
    access_method: AccessMethod | None = Field(
        None, description="warehouse (copy data, default) or direct (query in place; Postgres/MySQL)."
    )
    created_via: CreatedVia | None = Field(None, description="Origin marker; defaults to api.")
    direct_query_enabled: bool | None = Field(None, description="Allow direct queries against the source.")


class UpdateSource(SourceRef):
    prefix: str | None = Field(
        None, description="Ignored for warehouse sources (the prefix is fixed at creation)."
    )
    description: str | None = Field(None, max_length=400, description="New description.")
    job_inputs: dict[str, Any] | None = Field(
        None,
        description="Connection settings to change, merged over the stored ones; stored secrets are kept.",
    )
    direct_query_enabled: bool | None = Field(None, description="Allow direct queries against the source.")
    account_id: str | None = Field(None, description="Legacy write-only field.")
    client_secret: str | None = Field(
        None, description="Legacy write-only secret; refused unless inline secrets are allowed."
    )
    created_via: CreatedVia | None = Field(None, description="Ignored by the API.")


class BulkUpdateSchemas(SourceRef):
    schemas: list[SchemaUpdate] = Field(
        min_length=1, description="One entry per schema to change; ids must be unique."
    )


class CdcForSource(SourceRef):
    cdc_management_mode: CdcManagementMode | None = Field(
        None, description="posthog (we create slot/publication) or self_managed (you did)."
    )
    cdc_slot_name: str | None = Field(None, description="Replication slot name (self_managed).")
    cdc_publication_name: str | None = Field(None, description="Publication name (self_managed).")
    tables: list[str] | None = Field(None, description="Tables to check; default: the source's tables.")


class Jobs(SourceRef):
    after: str | None = Field(None, description="Only jobs created after this ISO 8601 time.")
    before: str | None = Field(None, description="Only jobs created before this ISO 8601 time.")
    schemas: list[str] | None = Field(None, description="Only jobs of these schema (table) names.")


class RevenueConfig(SourceRef):
    enabled: bool | None = Field(None, description="Use this source for revenue analytics.")
    include_invoiceless_charges: bool | None = Field(None, description="Count charges without an invoice.")


class WebhookInputs(SourceRef):
    inputs: dict[str, Any] = Field(description="Keys of the source's webhookFields (Stripe: signing_secret).")


class ConfigArgs(Args):
    source_type: SourceType = Field(description="Source type whose form the config follows.")
    config: dict[str, Any] = Field(
        description="The form's connection fields (host, port, database, user, ...)."
    )


class CheckCdc(ConfigArgs):
    source_type: SourceType = Field(SourceType.Postgres, description="Only Postgres supports CDC.")
    cdc_management_mode: CdcManagementMode | None = Field(
        None, description="posthog (default) or self_managed."
    )
    tables: list[str] | None = Field(None, description="Tables to check, as schema.table or table.")
    cdc_slot_name: str | None = Field(None, description="Slot name (self_managed).")
    cdc_publication_name: str | None = Field(None, description="Publication name (self_managed).")


class Setup(SourceTypeArg):
    payload: SetupPayload = Field(
        default_factory=lambda: SetupPayload(),
        description="{'credential_id': ...} from the connect page flow; nothing else is needed.",
    )
    prefix: str | None = Field(
        None, max_length=100, description="Table prefix; needed when this type exists already."
    )
    description: str | None = Field(None, max_length=400, description="Free text shown in the source list.")
    direct_query_enabled: bool | None = Field(None, description="Allow direct queries (Postgres/MySQL).")


class SourcePrefix(SourceTypeArg):
    prefix: str | None = Field(None, description="Prefix to check.")


class StoreCredentials(SourceTypeArg):
    payload: dict[str, Any] = Field(description="The form's fields including secrets (harnesses only).")


class StoredCredentials(Args):
    source_type: SourceType | None = Field(None, description="Only credentials for this source type.")
    search: str | None = Field(None, description="Text filter.")


class Wizard(Args):
    source_type: str | None = Field(
        None,
        description="Comma-separated source types to return (e.g. 'Postgres,Stripe'). Omit only if you need every "
        "form: the full answer is about 50 KB.",
    )


class UpdateSchema(SchemaRef):
    should_sync: bool | None = Field(None, description="Enable (needs sync_type) or disable this table.")
    sync_type: SyncType | None = Field(
        None, description="full_refresh, incremental, append, webhook, cdc or xmin."
    )
    incremental_field: str | None = Field(None, description="Cursor column; changing it resets the cursor.")
    incremental_field_type: IncrementalFieldType | None = Field(
        None, description="Type of the cursor column."
    )
    sync_frequency: SyncFrequency | None = Field(
        None, description="How often it syncs; never stops the schedule."
    )
    sync_time_of_day: str | None = Field(None, description="HH:MM:SS UTC anchor; null to clear.")
    primary_key_columns: list[str] | None = Field(
        None, description="Upsert key; fixed once incremental data landed."
    )
    cdc_table_mode: CdcTableMode | None = Field(None, description="CDC only.")
    enabled_columns: list[str] | None = Field(None, description="Columns to sync; null for all.")


class WaitForSync(Args):
    source_id: str = Field(description="Source UUID whose running syncs to wait for.")
    schema_id: str | None = Field(None, description="Wait only for this schema (table).")
    timeout_seconds: float = Field(
        120, ge=1, le=900, description="Give up waiting after this long; returns what still runs."
    )


class QueryWarehouse(Args):
    sql: str = Field(
        min_length=1,
        max_length=20_000,
        description="One DuckDB SELECT (or DESCRIBE/SHOW/SUMMARIZE) over tables from data-warehouse-tables-list.",
    )


# ---- the catalog -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    tool: str
    title: str
    method: str
    path: str  # after /api/{family}/{project}/ ; `{id}` is filled from the `id` argument
    model: type[Args]
    kind: Kind
    toolset: str
    answer: Answer
    description: str
    query: tuple[str, ...] = ()
    flatten: str | None = None  # a dict argument whose keys are sent at the top level of the body
    guarded: bool = False  # may carry secrets: arguments are scanned before sending
    composite: bool = False  # not one HTTP call: server.py implements it

    @property
    def read_only(self) -> bool:
        return self.kind == "read"

    @property
    def idempotent(self) -> bool:
        return self.kind in ("read", "idempotent", "destructive")

    @property
    def destructive(self) -> bool:
        return self.kind == "destructive"


S = "external_data_sources/"
SCH = "external_data_schemas/"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "external-data-sources-list",
        "List data warehouse sources",
        "GET",
        S,
        Page,
        "read",
        "sources",
        "page",
        "List sources (Postgres, Stripe, ...) with status, tables and last run: start here for a source "
        "id. Next: external-data-sources-retrieve or external-data-schemas-list.",
        query=("limit", "offset", "search"),
    ),
    Operation(
        "external-data-sources-create",
        "Create data warehouse source (advanced; prefer source setup)",
        "POST",
        S,
        CreateSource,
        "write",
        "sources",
        "object",
        "Advanced: create a source from inline connection fields and an explicit `schemas` list (names "
        "from external-data-sources-database-schema-create). Prefer data-warehouse-source-setup.",
        guarded=True,
    ),
    Operation(
        "external-data-sources-retrieve",
        "Get data warehouse source",
        "GET",
        S + "{id}/",
        SourceRef,
        "read",
        "sources",
        "object",
        "Get one source: status, latest error, settings (secrets removed) and its tables with sync type, "
        "status and last sync.",
    ),
    Operation(
        "external-data-sources-partial-update",
        "Update data warehouse source",
        "PATCH",
        S + "{id}/",
        UpdateSource,
        "idempotent",
        "sources",
        "object",
        "Change a source's description or connection settings (job_inputs, merged over the stored ones "
        "and checked against the source). New credentials: use the connect link.",
        guarded=True,
    ),
    Operation(
        "external-data-sources-destroy",
        "Delete data warehouse source",
        "DELETE",
        S + "{id}/",
        SourceRef,
        "destructive",
        "sources",
        "empty",
        "Delete a source, its tables' schedules and its synced data. Irreversible: confirm with the "
        "user. To keep the data, disable tables instead.",
    ),
    Operation(
        "external-data-sources-bulk-update-schemas-partial-update",
        "Update many tables of a source",
        "PATCH",
        S + "{id}/bulk_update_schemas/",
        BulkUpdateSchemas,
        "idempotent",
        "sources",
        "list",
        "Change sync settings of several tables of one source at once, all or nothing. For one table: "
        "external-data-schemas-partial-update.",
    ),
    Operation(
        "external-data-sources-cdc-status-retrieve",
        "Get CDC status of a source",
        "GET",
        S + "{id}/cdc_status/",
        SourceRef,
        "read",
        "cdc",
        "object",
        "Live CDC health of a Postgres source: slot, publication, WAL lag, published tables. Use when "
        "CDC syncs lag or fail.",
    ),
    Operation(
        "external-data-sources-check-cdc-prerequisites-for-source-create",
        "Check CDC prerequisites of a source",
        "POST",
        S + "{id}/check_cdc_prerequisites_for_source/",
        CdcForSource,
        "read",
        "cdc",
        "object",
        "Check whether an existing Postgres source is ready for CDC, with its stored credentials. "
        "Returns {valid, errors}; then set sync_type cdc on its tables.",
    ),
    Operation(
        "external-data-sources-create-webhook-create",
        "Create and register a webhook for a source",
        "POST",
        S + "{id}/create_webhook/",
        SourceRef,
        "write",
        "webhooks",
        "object",
        "Register a webhook at the source (Stripe) so changes arrive in real time. If pending_inputs "
        "lists fields, the user supplies them on the connect page.",
    ),
    Operation(
        "external-data-sources-delete-webhook-create",
        "Delete a source's webhook",
        "POST",
        S + "{id}/delete_webhook/",
        SourceRef,
        "destructive",
        "webhooks",
        "object",
        "Remove a source's webhook here and at the source. Refused while tables use webhook sync: change "
        "their sync type first.",
    ),
    Operation(
        "external-data-sources-jobs-retrieve",
        "List sync jobs of a source",
        "GET",
        S + "{id}/jobs/",
        Jobs,
        "read",
        "jobs",
        "list",
        "Sync history of a source, newest first (at most 50): status, rows, error, timings per table. To "
        "wait for running syncs: data-warehouse-sync-wait.",
        query=("after", "before", "schemas"),
    ),
    Operation(
        "external-data-sources-refresh-schemas-create",
        "Discover new tables of a source",
        "POST",
        S + "{id}/refresh_schemas/",
        SourceRef,
        "write",
        "sources",
        "object",
        "Re-read the source's table list: adds new tables (disabled), brings back a returning table with its "
        "old settings, removes vanished ones; moves no data.",
    ),
    Operation(
        "external-data-sources-reload-create",
        "Sync all tables of a source now",
        "POST",
        S + "{id}/reload/",
        SourceRef,
        "write",
        "sources",
        "empty",
        "Sync every enabled table of the source now, keeping cursors. Then data-warehouse-sync-wait.",
    ),
    Operation(
        "external-data-sources-revenue-analytics-config-partial-update",
        "Update revenue analytics config",
        "PATCH",
        S + "{id}/revenue_analytics_config/",
        RevenueConfig,
        "idempotent",
        "sources",
        "object",
        "Turn revenue analytics on or off for a (Stripe) source, and whether invoiceless charges count.",
    ),
    Operation(
        "external-data-sources-update-webhook-inputs-create",
        "Set webhook inputs of a source",
        "POST",
        S + "{id}/update_webhook_inputs/",
        WebhookInputs,
        "write",
        "webhooks",
        "object",
        "Supply the webhook fields a source still needs (webhook-info's pending inputs, e.g. Stripe's "
        "signing secret).",
        guarded=True,
    ),
    Operation(
        "external-data-sources-webhook-info-retrieve",
        "Get webhook info of a source",
        "GET",
        S + "{id}/webhook_info/",
        SourceRef,
        "read",
        "webhooks",
        "object",
        "Whether the source supports and has a webhook, its URL, the tables it feeds, missing inputs or "
        "events.",
    ),
    Operation(
        "external-data-sources-check-cdc-prerequisites-create",
        "Check Postgres CDC prerequisites",
        "POST",
        S + "check_cdc_prerequisites/",
        CheckCdc,
        "read",
        "cdc",
        "object",
        "Check a Postgres database that is not yet a source for CDC readiness, from a connection config. "
        "For an existing source use the -for-source-create tool.",
        flatten="config",
        guarded=True,
    ),
    Operation(
        "data-warehouse-source-connect-link",
        "Get a secure link to connect a source",
        "GET",
        S + "connect_link/",
        SourceTypeArg,
        "read",
        "credentials",
        "object",
        "Step 1 of connecting a source: a one-time link where the user enters credentials in the "
        "browser. When they are done: data-warehouse-stored-credentials-list.",
        query=("source_type",),
    ),
    Operation(
        "external-data-sources-connections-list",
        "List direct-query connections",
        "GET",
        S + "connections/",
        NoArgs,
        "read",
        "sources",
        "list",
        "List sources queried in place (direct query), with id, prefix and engine.",
    ),
    Operation(
        "external-data-sources-database-schema-create",
        "Discover tables from a connection config",
        "POST",
        S + "database_schema/",
        ConfigArgs,
        "read",
        "sources",
        "list",
        "List the tables a connection config can sync (columns, keys, cursor fields) without creating "
        "anything. For an existing source: external-data-sources-refresh-schemas-create.",
        flatten="config",
        guarded=True,
    ),
    Operation(
        "data-warehouse-source-setup",
        "Set up a data warehouse source in one step",
        "POST",
        S + "setup/",
        Setup,
        "write",
        "credentials",
        "object",
        "Recommended way to add a source: from a credential_id, discovers every table, picks sync types "
        "and starts syncing. Then data-warehouse-sync-wait.",
    ),
    Operation(
        "external-data-sources-source-prefix-create",
        "Check a table prefix",
        "POST",
        S + "source_prefix/",
        SourcePrefix,
        "read",
        "sources",
        "empty",
        "Check that a table prefix is valid and free for a source type (needed when one of that type "
        "exists). Success means usable.",
    ),
    Operation(
        "external-data-sources-store-credentials-create",
        "Store source credentials (harnesses)",
        "POST",
        S + "store_credentials/",
        StoreCredentials,
        "write",
        "credentials",
        "object",
        "Validate credentials against the live source and store them encrypted for 24 h, returning a "
        "credential_id (harnesses; users use the connect link).",
        guarded=True,
    ),
    Operation(
        "data-warehouse-stored-credentials-list",
        "List stored credentials",
        "GET",
        S + "stored_credentials/",
        StoredCredentials,
        "read",
        "credentials",
        "list",
        "Step 2 of connecting a source: credentials the user stored through the connect page, newest "
        "first. Pass the credential_id to data-warehouse-source-setup.",
        query=("source_type", "search"),
    ),
    Operation(
        "external-data-sources-wizard-retrieve",
        "Get source connection forms",
        "GET",
        S + "wizard/",
        Wizard,
        "read",
        "sources",
        "object",
        "Connection forms of source types: fields, which are secret, suggested tables. Always pass "
        "source_type (all forms: ~50 KB).",
        query=("source_type",),
    ),
    Operation(
        "external-data-schemas-list",
        "List tables (schemas) of all sources",
        "GET",
        SCH,
        Page,
        "read",
        "schemas",
        "page",
        "List tables (schemas) of all sources with sync type, frequency, status and last sync. Next: "
        "external-data-schemas-partial-update.",
        query=("limit", "offset", "search"),
    ),
    Operation(
        "external-data-schemas-retrieve",
        "Get one table (schema)",
        "GET",
        SCH + "{id}/",
        SchemaRef,
        "read",
        "schemas",
        "object",
        "Get one table's sync settings, status, latest error, columns and synced-table details.",
    ),
    Operation(
        "external-data-schemas-partial-update",
        "Update one table (schema)",
        "PATCH",
        SCH + "{id}/",
        UpdateSchema,
        "idempotent",
        "schemas",
        "object",
        "Change how one table syncs: enabled, sync type, cursor, primary key, frequency, columns. Valid "
        "cursors: external-data-schemas-incremental-fields-create.",
    ),
    Operation(
        "external-data-schemas-destroy",
        "Remove a table from a source",
        "DELETE",
        SCH + "{id}/",
        SchemaRef,
        "destructive",
        "schemas",
        "empty",
        "Remove one table from its source so it no longer syncs. Confirm with the user; to drop only its "
        "data, use -delete-data-destroy.",
    ),
    Operation(
        "external-data-schemas-cancel-create",
        "Cancel a running table sync",
        "POST",
        SCH + "{id}/cancel/",
        SchemaRef,
        "write",
        "jobs",
        "empty",
        "Stop the table's running sync: it ends Failed with 'Sync cancelled by user'; data and cursor from "
        "earlier syncs stay intact.",
    ),
    Operation(
        "external-data-schemas-delete-data-destroy",
        "Delete a table's synced data",
        "DELETE",
        SCH + "{id}/delete_data/",
        SchemaRef,
        "destructive",
        "schemas",
        "empty",
        "Drop the table's synced data and reset its cursor; it stays configured and the next sync "
        "reloads everything. Confirm with the user.",
    ),
    Operation(
        "external-data-schemas-incremental-fields-create",
        "Get cursor and key options of a table",
        "POST",
        SCH + "{id}/incremental_fields/",
        SchemaRef,
        "read",
        "schemas",
        "object",
        "Ask the live source which columns can be the table's cursor and primary key, and which sync "
        "types it supports.",
    ),
    Operation(
        "external-data-schemas-reload-create",
        "Sync one table now",
        "POST",
        SCH + "{id}/reload/",
        SchemaRef,
        "write",
        "schemas",
        "empty",
        "Sync this one table now, keeping its cursor. Then data-warehouse-sync-wait.",
    ),
    Operation(
        "external-data-schemas-resync-create",
        "Re-sync one table from scratch",
        "POST",
        SCH + "{id}/resync/",
        SchemaRef,
        "write",
        "schemas",
        "empty",
        "Reset the table's cursor and copy it again from scratch (cancels a running sync). Use when data "
        "is wrong or the cursor changed.",
    ),
    Operation(
        "data-warehouse-sync-wait",
        "Wait for syncs to finish",
        "GET",
        S + "{id}/jobs/",
        WaitForSync,
        "read",
        "jobs",
        "object",
        "Wait for a source's (or one table's) running syncs to finish, with progress; returns the jobs. "
        "On timeout it returns what still runs: call again.",
        composite=True,
    ),
    # Embedded only (PostHog queries its warehouse with its own tools): paths outside PostHog's API.
    Operation(
        "data-warehouse-tables-list",
        "List synced warehouse tables",
        "GET",
        "warehouse/tables/",
        NoArgs,
        "read",
        "warehouse",
        "list",
        "The synced tables with columns, types and row counts, for data-warehouse-query.",
    ),
    Operation(
        "data-warehouse-query",
        "Query the synced tables",
        "POST",
        "warehouse/query/",
        QueryWarehouse,
        "read",
        "warehouse",
        "object",
        "Run one read-only SQL query (DuckDB dialect) over the synced tables. Answers at most 200 rows / "
        "64 KB (`_truncated` says when cut: aggregate or add LIMIT); stopped after 30 s.",
    ),
)

BY_TOOL: dict[str, Operation] = {op.tool: op for op in OPERATIONS}
