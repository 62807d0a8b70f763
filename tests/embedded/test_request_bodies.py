"""domain/request_bodies.py: each body's shape is checked once, and refused in the words PostHog uses."""

from __future__ import annotations

from typing import Any

import pytest

from warehouse_mcp.embedded.domain.errors import Invalid, Refused
from warehouse_mcp.embedded.domain.request_bodies import (
    MAX_SQL_CHARACTERS,
    ActionBody,
    BulkSchemaUpdate,
    CdcConfigCheck,
    CdcSettings,
    PrefixCheck,
    SchemaChoice,
    SchemaSettings,
    Serializer,
    SourceCreate,
    SourcePatch,
    StoredCredentials,
    TablePreview,
    WarehouseQuery,
    WebhookInputs,
)

UUID = "6a1a1ad0-0000-4000-8000-000000000000"
CREATE = {"source_type": "Postgres", "payload": {}}
SEND_SQL = "Send the SQL to run as `sql` (one SELECT statement)."
MISSING_TYPE = "Missing required parameter: source_type"
CDC_MODE = "cdc_management_mode must be 'posthog' or 'self_managed'."
TABLES = "'tables' must be a list of table names (schema.table or table)."


@pytest.mark.parametrize(
    ("model", "body", "detail", "attr", "code"),
    [
        (SourceCreate, {"payload": {}}, "This field is required.", "source_type", "required"),
        (
            SourceCreate,
            {"source_type": None, "payload": {}},
            "This field may not be null.",
            "source_type",
            "null",
        ),
        (
            SourceCreate,
            {**CREATE, "source_type": 7},
            '"7" is not a valid choice.',
            "source_type",
            "invalid_choice",
        ),
        (
            SourceCreate,
            {**CREATE, "payload": []},
            'Expected a dictionary of items but got type "list".',
            "payload",
            "not_a_dict",
        ),
        (SourceCreate, {**CREATE, "prefix": 5}, "Not a valid string.", "prefix", "invalid"),
        (
            SourceCreate,
            {**CREATE, "description": "x" * 401},
            "Ensure this field has no more than 400 characters.",
            "description",
            "max_length",
        ),
        (
            SourceCreate,
            {**CREATE, "access_method": None},
            "This field may not be null.",
            "access_method",
            "null",
        ),
        (
            SourcePatch,
            {"direct_query_enabled": [True]},
            "Must be a valid boolean.",
            "direct_query_enabled",
            "invalid",
        ),
        (
            SchemaSettings,
            {"incremental_field_lookback_seconds": "soon"},
            "A valid integer is required.",
            "incremental_field_lookback_seconds",
            "invalid",
        ),
        (
            SchemaSettings,
            {"primary_key_columns": ["id", 3]},
            "Not a valid string.",
            "primary_key_columns__1",
            "invalid",
        ),
        (SchemaSettings, {"sync_time_of_day": "7am"}, "Invalid sync time of day", None, "invalid_input"),
        (
            BulkSchemaUpdate,
            {"schemas": [{"id": UUID}, {"id": 4}]},
            "Must be a valid UUID.",
            "schemas__1__id",
            "invalid",
        ),
        (
            BulkSchemaUpdate,
            {"schemas": [{"id": UUID, "sync_type": "teleport"}]},
            '"teleport" is not a valid choice.',
            "schemas__0__sync_type",
            "invalid_choice",
        ),
        # Actions that check a field with DRF, or answer in DRF's shape in their own words.
        (PrefixCheck, {"source_type": "Postgres", "prefix": 5}, "Not a valid string.", "prefix", "invalid"),
        (WarehouseQuery, {}, SEND_SQL, "sql", "required"),
        (WarehouseQuery, {"sql": None}, SEND_SQL, "sql", "required"),
        (WarehouseQuery, {"sql": " \n "}, SEND_SQL, "sql", "required"),
        (WarehouseQuery, {"sql": ["SELECT 1"]}, SEND_SQL, "sql", "required"),
        (
            WarehouseQuery,
            {"sql": "SELECT 1" + " " * MAX_SQL_CHARACTERS},
            f"The SQL is longer than {MAX_SQL_CHARACTERS} characters.",
            "sql",
            "max_length",
        ),
    ],
)
def test_a_bad_shape_is_drfs_field_error(
    model: type[Serializer], body: dict[str, Any], detail: str, attr: str | None, code: str
) -> None:
    with pytest.raises(Invalid) as refused:
        model.parse(body)
    assert (refused.value.message, refused.value.field, refused.value.code) == (detail, attr, code)


def test_a_good_body_is_typed_and_remembers_what_was_sent() -> None:
    patch = SchemaSettings.parse(
        {"should_sync": "true", "sync_time_of_day": "06:30:00", "incremental_field": None}
    )
    assert patch.should_sync is True and patch.sync_time_of_day == "06:30:00"
    assert patch.given("incremental_field") and not patch.given("sync_type"), "null sent is not 'not sent'"
    assert SourceCreate.parse({**CREATE, "unknown": 1}).access_method == "warehouse", (
        "unknown keys are ignored"
    )


def test_a_bulk_entry_ignores_primary_key_columns() -> None:
    entry = BulkSchemaUpdate.parse(
        {"schemas": [{"id": UUID.upper(), "primary_key_columns": ["id"]}]}
    ).schemas[0]
    assert str(entry.id) == UUID
    assert not entry.given("primary_key_columns") and entry.primary_key_columns is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"sync_type": "magic"},
            "Unknown sync_type 'magic' for schema 'orders'. Use one of: full_refresh, incremental, append, "
            "webhook, cdc, xmin.",
        ),
        ({"sync_time_of_day": "25:00"}, "Invalid sync_time_of_day for schema 'orders': use HH:MM:SS (UTC)."),
        (
            {"enabled_columns": "id"},
            "Invalid enabled_columns for schema 'orders': Expected a list of items but got type \"str\".",
        ),
    ],
)
def test_a_custom_actions_body_is_refused_in_one_sentence(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(Refused) as refused:
        SchemaChoice.parse_for({"name": "orders", **entry}, " for schema 'orders'")
    assert refused.value.message == message


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (TablePreview, {"host": "db"}, MISSING_TYPE),
        (TablePreview, {"source_type": None}, MISSING_TYPE),
        (PrefixCheck, {"prefix": "x"}, MISSING_TYPE),
        (PrefixCheck, {"source_type": ""}, MISSING_TYPE),
        (StoredCredentials, {"payload": {}}, MISSING_TYPE),
        (StoredCredentials, {"source_type": 3, "payload": {}}, MISSING_TYPE),
        (
            StoredCredentials,
            {"source_type": "Postgres", "payload": "host=x"},
            "'payload' must be an object of the source's connection fields",
        ),
        (CdcSettings, {"cdc_management_mode": "sometimes"}, CDC_MODE),
        (CdcSettings, {"cdc_management_mode": 1}, CDC_MODE),
        (CdcSettings, {"cdc_slot_name": 5}, "Invalid cdc_slot_name: Not a valid string."),
        (CdcConfigCheck, {"cdc_management_mode": "x", "tables": "orders"}, CDC_MODE),
        (CdcConfigCheck, {"tables": "orders"}, TABLES),
        (CdcConfigCheck, {"tables": ["orders", 7]}, TABLES),
        (WebhookInputs, {}, "No inputs provided"),
        (WebhookInputs, {"inputs": {}}, "No inputs provided"),
        (WebhookInputs, {"inputs": "whsec"}, "No inputs provided"),
    ],
)
def test_an_actions_body_is_refused_in_its_own_words(
    model: type[ActionBody], body: dict[str, Any], message: str
) -> None:
    with pytest.raises(Refused) as refused:
        model.parse(body)
    assert refused.value.message == message


def test_a_missing_field_is_a_missing_parameter_unless_the_action_words_it() -> None:
    class Named(ActionBody):
        name: str

    with pytest.raises(Refused) as refused:
        Named.parse({})
    assert refused.value.message == "Missing required parameter: name"


def test_an_actions_empty_values_read_as_the_defaults_it_reads_them_as() -> None:
    empty = CdcConfigCheck.parse(
        {"cdc_management_mode": "", "tables": None, "cdc_slot_name": "", "cdc_publication_name": None}
    )
    assert (empty.cdc_management_mode, empty.tables, empty.cdc_slot_name, empty.cdc_publication_name) == (
        "posthog",
        [],
        None,
        None,
    )
    assert CdcSettings.parse({"cdc_management_mode": "self_managed"}).cdc_management_mode == "self_managed"
    assert TablePreview.parse({"source_type": "Postgres", "access_method": "direct"}).direct
    assert not PrefixCheck.parse({"source_type": "Postgres", "access_method": "sideways"}).direct, (
        "anything but direct reads as warehouse"
    )
    assert StoredCredentials.parse({"source_type": "Postgres", "payload": None}).payload is None
