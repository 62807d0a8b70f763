"""CDC rules (api-semantics §4): the prerequisite checks, with a config or a source's stored one, live
status, the settings a new CDC source stores, and dropping what CDC leaves at the source when it goes.

Only Postgres has CDC; the checks, the status read and the slot drop are the Postgres connector's,
imported on use (the driver is heavy).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo
from warehouse_mcp.embedded.connectors.forms import truthy
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.request_bodies import CdcConfigCheck, CdcSettings
from warehouse_mcp.embedded.store import Store, source_records
from warehouse_mcp.embedded.store.source_records import SourceRecord
from warehouse_mcp.embedded.sync.replication_names import slot_and_publication

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

logger = logging.getLogger(__name__)

CDC_SOURCE_TYPES = registry.types_with(lambda can: can.cdc)
ACTIVE_SLOT_WAIT_SECONDS = 10.0
CONNECT_FAILED = "Could not connect to Postgres to check prerequisites: "
# PostHog names the stored source, not the engine, when it cannot reach it.
SOURCE_CONNECT_FAILED = "Could not connect to source to check prerequisites: "


def cdc_source(store: Store, team_id: int, source_id: str) -> SourceRecord:
    """The source of a CDC action (status, its prerequisite checks); refused when its type has no CDC."""
    source = source_records.get(store, team_id, source_id)
    if source.source_type not in CDC_SOURCE_TYPES:
        raise Refused(f"CDC is not supported for source type: {source.source_type}")
    return source


def prerequisites_for_source(backend: Services, source: SourceRecord, body: CdcSettings) -> dict[str, Any]:
    """`{valid, errors}`: the stored source's database checked for CDC (`source` from cdc_source)."""
    config = source_records.source_config(backend.store, backend.vault, source.id)
    return _prerequisites(config, [], body, SOURCE_CONNECT_FAILED)


def prerequisites_for_config(body: CdcConfigCheck, sent: dict[str, Any]) -> dict[str, Any]:
    """`{valid, errors}`: a config not yet stored (`sent` is the body as sent: the form's fields sit at its
    top level, beside `tables` and the CDC settings)."""
    source_type = body.source_type
    if source_type not in CDC_SOURCE_TYPES:
        raise Refused(f"CDC prerequisite checks are only supported for {registry.names(CDC_SOURCE_TYPES)}.")
    config = connector_access.only_form_fields(source_type, sent)
    connector_access.check_config(source_type, config)
    return _prerequisites(config, body.tables, body, CONNECT_FAILED)


def status(backend: Services, source: SourceRecord) -> dict[str, Any]:
    """The source's CDC settings and its slot's live state (`source` from cdc_source)."""
    config = source_records.source_config(backend.store, backend.vault, source.id)
    if not config.get("cdc_enabled"):
        return {"enabled": False}
    slot, publication, _managed = slot_and_publication(source.id, config)
    try:
        from warehouse_mcp.embedded.connectors import postgres

        live = postgres.cdc_status(config, slot, publication)
    except SourceError as exc:
        raise Refused(f"Could not connect to source to read CDC status: {exc}") from None
    warning, critical = (
        config.get("cdc_lag_warning_threshold_mb"),
        config.get("cdc_lag_critical_threshold_mb"),
    )
    return {
        "enabled": True,
        "management_mode": config.get("cdc_management_mode") or "posthog",
        "slot_name": slot,
        "publication_name": publication,
        "lag_warning_threshold_mb": warning,
        "lag_critical_threshold_mb": critical,
        **live,
        "lag_status": lag_status(live["lag_bytes"], warning, critical),
    }


def lag_status(lag_bytes: int | None, warning_mb: Any, critical_mb: Any) -> str | None:
    """ "ok", "warning" or "critical": the slot's lag against the source's thresholds (None without a slot)."""
    if lag_bytes is None:
        return None
    megabytes = lag_bytes / (1024 * 1024)
    if isinstance(critical_mb, int | float) and megabytes >= critical_mb:
        return "critical"
    if isinstance(warning_mb, int | float) and megabytes >= warning_mb:
        return "warning"
    return "ok"


def refuse_unready_cdc(source_type: str, config: dict[str, Any], tables: list[TableInfo]) -> None:
    """Setup asked for CDC: the database must pass the prerequisite checks, or setup stops with every
    failure and the fix (the same checks as prerequisites_for_config)."""
    if source_type not in CDC_SOURCE_TYPES:
        raise Refused(
            f"CDC is only available for {registry.names(CDC_SOURCE_TYPES)} sources, not {source_type}."
        )
    names = [table.name for table in tables if table.primary_keys]
    if not names:
        raise Refused("CDC needs tables with a primary key; none of this source's tables has one.")
    try:
        from warehouse_mcp.embedded.connectors import postgres

        errors = postgres.check_cdc_prerequisites(
            config,
            names,
            cdc_mode(config),
            config.get("cdc_slot_name") or None,
            config.get("cdc_publication_name") or None,
        )
    except SourceError as exc:
        raise Refused(str(exc)) from None
    if errors:
        raise Refused(
            "CDC was requested but the database is not ready for it: "
            + " ".join(errors)
            + " Fix these and retry, or set up the source without cdc_enabled."
        )


def _prerequisites(
    config: dict[str, Any], tables: list[str], settings: CdcSettings, connect_failed: str
) -> dict[str, Any]:
    try:
        from warehouse_mcp.embedded.connectors import postgres

        errors = postgres.check_cdc_prerequisites(
            config,
            tables,
            settings.cdc_management_mode,
            settings.cdc_slot_name,
            settings.cdc_publication_name,
        )
    except SourceError as exc:
        text = str(exc)
        if text.startswith(CONNECT_FAILED):
            text = connect_failed + text.removeprefix(CONNECT_FAILED)
        raise Refused(text) from None
    return {"valid": not errors, "errors": list(errors)}


def cdc_mode(config: dict[str, Any]) -> str:
    """The CDC management mode of a config (a source's, or a new source's payload), read as a request's."""
    return CdcSettings.parse({"cdc_management_mode": config.get("cdc_management_mode")}).cdc_management_mode


def new_source_settings(payload: dict[str, Any], source_id: str) -> dict[str, Any]:
    """The CDC job inputs a new source with `cdc_enabled` stores: what the payload gives, else the defaults."""
    slot, publication, _managed = slot_and_publication(source_id, payload)
    return {
        "cdc_enabled": True,
        "cdc_management_mode": cdc_mode(payload),
        "cdc_slot_name": slot,
        "cdc_publication_name": publication,
        "cdc_auto_drop_slot": truthy(payload.get("cdc_auto_drop_slot", True)),
        "cdc_lag_warning_threshold_mb": payload.get("cdc_lag_warning_threshold_mb", 1024),
        "cdc_lag_critical_threshold_mb": payload.get("cdc_lag_critical_threshold_mb", 10240),
    }


# What posthog-mode CDC leaves at the source goes when the source goes or CDC is turned off. A replication
# slot nobody reads keeps every WAL segment since its position: left behind, it fills the source's disk.
# So the slot and publication this backend created are dropped first, and when that fails the change is
# refused with the reason, never done silently. self_managed slots and publications belong to the user and
# are never touched; neither are they when `cdc_auto_drop_slot` is off.


def drop_if_managed(source_id: str, config: dict[str, Any]) -> None:
    """Drop the slot and publication of a posthog-mode CDC source (with cdc_auto_drop_slot); SourceError
    says why when that is not possible."""
    if not truthy(config.get("cdc_enabled")) or not truthy(config.get("cdc_auto_drop_slot", True)):
        return
    slot, publication, managed = slot_and_publication(source_id, config)
    if not managed:
        return
    from warehouse_mcp.embedded.connectors import postgres_cdc

    deadline = time.monotonic() + ACTIVE_SLOT_WAIT_SECONDS
    while True:
        try:
            postgres_cdc.drop_slot_and_publication(config, slot, publication)
            logger.info("Dropped replication slot %s and publication %s", slot, publication)
            return
        except SourceError as error:
            # A sync reading the slot holds it for a moment: wait for it rather than fail.
            if "is active for PID" not in str(error) or time.monotonic() > deadline:
                raise SourceError(
                    f"Could not drop the replication slot '{slot}' and publication '{publication}' at the "
                    f"source: {error} Fix the connection and retry; or (a database that is gone, or a slot you "
                    "will remove yourself) set job_inputs.cdc_auto_drop_slot to false, retry, and drop them "
                    f"yourself (SELECT pg_drop_replication_slot('{slot}'); "
                    f"DROP PUBLICATION {publication};)."
                ) from None
            time.sleep(0.2)
