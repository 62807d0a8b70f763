"""domain/request_bodies.py: each body's shape is checked once, and refused in the words PostHog uses."""

from __future__ import annotations

from typing import Any

import pytest

from warehouse_mcp.embedded.domain.errors import Invalid, Refused
from warehouse_mcp.embedded.domain.request_bodies import (
    BulkSchemaUpdate,
    SchemaChoice,
    SchemaSettings,
    Serializer,
    SourceCreate,
    SourcePatch,
)

UUID = "6a1a1ad0-0000-4000-8000-000000000000"
CREATE = {"source_type": "Postgres", "payload": {}}


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
