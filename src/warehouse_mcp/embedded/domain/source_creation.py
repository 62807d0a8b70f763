"""Creating a source (create and setup share it): PostHog's checks in PostHog's order, then one transaction.

Order of checks (api-semantics §4 create): direct mode only for Postgres/MySQL, prefix rules, string
values stripped, config validation, live credential check, discovery, then the `schemas` payload.
Tables the payload leaves out are stored too, disabled, as PostHog's periodic discovery would add them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import TableInfo
from warehouse_mcp.embedded.domain import cdc, connector_access, schema_updates, serializers
from warehouse_mcp.embedded.domain.errors import Invalid, Refused
from warehouse_mcp.embedded.domain.request_bodies import PrefixCheck, SchemaChoice, SourceCreate, TablePreview
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.sync import runnable
from warehouse_mcp.models import DEFAULT_FREQUENCY, FREQUENCY_SECONDS, AccessMethod, CdcTableMode

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

PREFIX_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DIRECT_ENGINES = {
    source_type: str(registry.capabilities(source_type).direct_query_engine)
    for source_type in registry.types_with(lambda can: can.direct_query_engine)
}
CDC_FREQUENCY_SECONDS = 5 * 60


def check_prefix_format(prefix: str | None) -> None:
    """PostHog's prefix rules: the prefix must make valid table identifiers (underscores at the ends are ignored)."""
    if not prefix:
        return
    cleaned = prefix.strip("_")
    if not cleaned:
        raise Invalid("Prefix cannot consist of only underscores")
    if not PREFIX_PATTERN.match(cleaned):
        raise Invalid(
            "Prefix must contain only letters, numbers, and underscores, and start with a letter or underscore"
        )


def direct_name(source_type: str, prefix: str | None) -> str:
    """A direct source's name (its prefix); refused for a type that cannot be queried in place, or blank."""
    if source_type not in DIRECT_ENGINES:
        raise Refused(
            f"Direct query mode is currently supported only for {registry.names(tuple(DIRECT_ENGINES))} sources."
        )
    name = (prefix or "").strip()
    if not name:
        raise Refused("Name is required for direct query sources")
    return name


def refuse_secret_refs(payload: dict[str, Any]) -> None:
    """A `{"secretRef": ...}` placeholder (from a wizard that did not resolve it) is not a secret value."""
    offenders = sorted(
        key for key, value in payload.items() if isinstance(value, dict) and "secretRef" in value
    )
    if offenders:
        raise Refused(
            f"Unresolved secret reference(s) for: {', '.join(offenders)}. These fields are still "
            "`{'secretRef': ...}` objects — PostHog cannot resolve them. Resolve the secret to its real "
            "value before calling (or collect credentials via data-warehouse-source-connect-link and pass "
            "the resulting credential_id instead)."
        )


def strip_strings(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value.strip() if isinstance(value, str) else value for key, value in payload.items()}


@dataclass
class NewSource:
    source_type: str
    payload: dict[str, Any]
    prefix: str | None
    description: str | None
    access_method: str
    created_via: str
    direct_query_enabled: bool = False


def create(backend: Services, team_id: int, body: SourceCreate) -> str:
    """POST external_data_sources/: the new source's id."""
    refuse_secret_refs(body.payload)
    new = NewSource(
        body.source_type,
        body.payload,
        body.prefix,
        body.description,
        body.access_method,
        body.created_via,
        bool(body.direct_query_enabled),
    )
    return create_source(backend, team_id, new)


def preview_tables(body: TablePreview, sent: dict[str, Any]) -> list[dict[str, Any]]:
    """database_schema: check a config against the live source and list its tables, creating nothing.

    `sent` is the body as sent: the source's config fields sit at its top level."""
    source_type = body.source_type
    refuse_secret_refs(sent)
    if not registry.is_known(source_type):
        raise Refused(f"Unknown source_type '{source_type}'")
    connector = connector_access.connector(source_type)
    config = connector_access.only_form_fields(source_type, sent)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config, direct=body.direct)
    permissions = connector_access.endpoint_permissions(connector, config, [table.name for table in tables])
    return [
        serializers.discovered_table_json(source_type, table, permissions.get(table.name)) for table in tables
    ]


def check_new_prefix(backend: Services, team_id: int, body: PrefixCheck) -> None:
    """source_prefix: would this prefix be accepted for a new source of this type? Refused when not."""
    source_type, prefix = body.source_type, body.prefix
    if body.direct:
        direct_name(source_type, prefix)
        return
    check_prefix_format(prefix)
    conflict = source_records.prefix_conflict(backend.store, team_id, source_type, prefix)
    if conflict:
        raise Refused(conflict)


@dataclass(frozen=True)
class SchemaPlan:
    name: str
    table: TableInfo
    should_sync: bool
    sync_type: str | None
    incremental_field: str | None
    incremental_field_type: str | None
    primary_key_columns: list[str] | None
    sync_time_of_day: str | None
    enabled_columns: list[str] | None
    cdc_table_mode: str
    frequency_seconds: int | None


def create_source(
    backend: Services,
    team_id: int,
    new: NewSource,
    checked: tuple[dict[str, Any], list[TableInfo]] | None = None,
) -> str:
    """Run create's checks in PostHog's order, store the source and its schemas, start the enabled syncs.

    `checked` is `(config, tables)` when the caller (setup) already validated and discovered.
    """
    direct = new.access_method == AccessMethod.direct
    prefix = new.prefix or None
    if direct:
        prefix = direct_name(new.source_type, new.prefix)
    else:
        check_prefix_format(prefix)
        conflict = source_records.prefix_conflict(backend.store, team_id, new.source_type, prefix)
        if conflict:
            raise Refused(conflict)

    payload = strip_strings(new.payload)
    if checked is None:
        connector = connector_access.connector(new.source_type)
        config = connector_access.only_form_fields(new.source_type, payload)
        connector_access.check_config(new.source_type, config)
        connector_access.check_credentials(connector, config)
        tables = connector_access.discover(connector, config, direct=direct)
    else:
        config, tables = checked

    source_id = str(uuid.uuid4())
    cdc_on = forms.truthy(payload.get("cdc_enabled")) and new.source_type in cdc.CDC_SOURCE_TYPES
    plans = _schema_plans(
        payload.get("schemas"), tables, source_type=new.source_type, cdc_on=cdc_on, direct=direct
    )
    if cdc_on:
        config = {**config, **cdc.new_source_settings(payload, source_id)}

    job_inputs, job_inputs_secret = source_records.encode_config(backend.vault, new.source_type, config)
    metadata = {"engine": DIRECT_ENGINES[new.source_type]} if direct else {}
    planned = {plan.name for plan in plans}
    to_sync: list[str] = []
    with backend.store.transaction() as db:
        # Checked again under the write lock: the live checks above take seconds, and two creates with
        # one prefix must not both pass (their tables would collide in the warehouse).
        conflict = (
            None
            if direct
            else source_records.prefix_conflict(backend.store, team_id, new.source_type, prefix)
        )
        if conflict:
            raise Refused(conflict)
        source_records.insert(
            db,
            source_id=source_id,
            team_id=team_id,
            source_type=new.source_type,
            prefix=prefix,
            description=new.description,
            created_via=new.created_via,
            access_method=new.access_method,
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata=metadata,
            direct_query_enabled=new.direct_query_enabled,
        )
        for plan in plans:
            schema_id = schema_records.insert(
                db,
                team_id=team_id,
                source_id=source_id,
                name=plan.name,
                table=plan.table,
                should_sync=plan.should_sync,
                sync_type=plan.sync_type,
                incremental_field=plan.incremental_field,
                incremental_field_type=plan.incremental_field_type,
                primary_key_columns=plan.primary_key_columns,
                sync_frequency_interval=plan.frequency_seconds,
                sync_time_of_day=plan.sync_time_of_day,
                enabled_columns=plan.enabled_columns,
                cdc_table_mode=plan.cdc_table_mode,
            )
            if plan.should_sync and not direct:
                to_sync.append(schema_id)
            elif plan.should_sync:
                columns = schema_records.available_columns(plan.table)
                schema_records.update(db, schema_id, schema_records.live_table(schema_id, plan.name, columns))
        # Tables the payload left out are known too (disabled), as PostHog's discovery adds them.
        for table in tables:
            if table.name not in planned:
                schema_records.insert(
                    db,
                    team_id=team_id,
                    source_id=source_id,
                    name=table.name,
                    table=table,
                    primary_key_columns=table.primary_keys or None,
                    sync_frequency_interval=FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
                )
    for schema_id in to_sync:
        backend.sync.request_sync(schema_id)
    return source_id


def _schema_plans(
    given: Any, tables: list[TableInfo], *, source_type: str, cdc_on: bool, direct: bool
) -> list[SchemaPlan]:
    if not given or not isinstance(given, list):
        raise Refused("Schemas not given")
    by_name = {table.name: table for table in tables}
    named = [entry if isinstance(entry, dict) else {} for entry in given]
    if any(entry.get("name") not in by_name for entry in named):
        raise Refused("Schemas given do not exist in source")
    entries = [SchemaChoice.parse_for(entry, f" for schema '{entry['name']}'") for entry in named]

    def wants_cdc(entry: SchemaChoice) -> bool:
        return entry.sync_type == "cdc" and entry.should_sync

    if not cdc_on:
        requested = sorted({str(entry.name) for entry in entries if wants_cdc(entry)})
        if requested:
            raise Refused(
                "CDC must be enabled on the source before selecting it as a sync type. "
                f"The following schemas requested CDC: {', '.join(requested)}."
            )
    else:
        missing_pk = sorted(
            {
                str(entry.name)
                for entry in entries
                if wants_cdc(entry) and not by_name[str(entry.name)].primary_keys
            }
        )
        if missing_pk:
            raise Refused(
                "CDC requires a primary key on each table. "
                f"The following tables have no primary key: {', '.join(missing_pk)}."
            )

    plans: dict[str, SchemaPlan] = {}
    for entry in entries:
        plans[str(entry.name)] = _schema_plan(entry, by_name[str(entry.name)], direct=direct)
    if not direct:
        for plan in plans.values():
            refusal = runnable.refusal(source_type, plan.sync_type, plan.name, plan.primary_key_columns)
            if refusal:
                raise Refused(refusal)
    return list(plans.values())


def _schema_plan(entry: SchemaChoice, table: TableInfo, *, direct: bool) -> SchemaPlan:
    if entry.should_sync and entry.sync_type in schema_updates.CURSOR_SYNC_TYPES:
        if entry.incremental_field is None:
            raise Refused("Incremental schemas given do not have an incremental field set")
        if entry.incremental_field_type is None:
            raise Refused("Incremental schemas given do not have an incremental field type set")
    cdc_set_up = entry.sync_type == "cdc" and entry.should_sync
    # A CDC table nobody enabled is not set up yet.
    sync_type = None if entry.sync_type == "cdc" and not entry.should_sync else entry.sync_type
    return SchemaPlan(
        name=table.name,
        table=table,
        should_sync=entry.should_sync,
        sync_type=None if direct else sync_type,
        incremental_field=entry.incremental_field,
        incremental_field_type=entry.incremental_field_type,
        primary_key_columns=entry.primary_key_columns or table.primary_keys or None,
        sync_time_of_day=None if direct else entry.sync_time_of_day,
        enabled_columns=entry.enabled_columns,
        cdc_table_mode=entry.cdc_table_mode or CdcTableMode.consolidated,
        frequency_seconds=CDC_FREQUENCY_SECONDS
        if cdc_set_up and not direct
        else FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
    )
