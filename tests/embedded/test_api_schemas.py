"""external_data_schemas/ and bulk_update_schemas: every PATCH rule, and the per-schema actions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Database
from tests.embedded.api_support import (
    SCHEMAS,
    SOURCES,
    Api,
    add_job,
    api,
    assert_drf,
    backend,
    land_table,
    message,
    orders_schema,
    pg_with_tables,
    set_schema,
    shared_pg,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend

__all__ = ["api", "backend", "shared_pg"]  # fixtures

pytestmark = pytest.mark.postgres


def create(api: Api, db: Database) -> str:
    schemas = [orders_schema(), {"name": "events", "should_sync": False}]
    return api.create_source("Postgres", {**db.config, "schemas": schemas})


@pytest.fixture
def source_id(api: Api, shared_pg: Database) -> str:
    return create(api, shared_pg)


@pytest.fixture
def orders(api: Api, source_id: str) -> dict[str, Any]:
    return api.schema_by_name(source_id, "orders")


@pytest.fixture
def events(api: Api, source_id: str) -> dict[str, Any]:
    return api.schema_by_name(source_id, "events")


def patch(api: Api, schema: dict[str, Any], body: dict[str, Any]) -> Any:
    return api.patch(f"{SCHEMAS}{schema['id']}/", body)


def enable_cdc(backend: EmbeddedBackend, source_id: str) -> None:
    with backend.store.transaction() as db:
        db.execute(
            "UPDATE sources SET job_inputs = json_set(job_inputs, '$.cdc_enabled', json('true')) WHERE id = ?",
            (source_id,),
        )


def next_sync_at(backend: EmbeddedBackend, schema_id: str) -> str | None:
    row = backend.store.query_one("SELECT next_sync_at FROM schemas WHERE id = ?", (schema_id,))
    assert row is not None
    return row["next_sync_at"]


# --- list and retrieve ----------------------------------------------------------------------------


def test_list_is_paginated_and_searchable(api: Api, source_id: str) -> None:
    everything = api.get(SCHEMAS).json()
    assert everything["count"] == 2 and {schema["name"] for schema in everything["results"]} == {
        "orders",
        "events",
    }
    assert all(schema["source"] is None for schema in everything["results"])
    page = api.get(f"{SCHEMAS}?limit=1").json()
    assert len(page["results"]) == 1 and page["next"] is not None
    assert [schema["name"] for schema in api.get(f"{SCHEMAS}?search=ORD").json()["results"]] == ["orders"]


def test_retrieve_embeds_the_source_summary(api: Api, source_id: str, orders: dict[str, Any]) -> None:
    body = api.get(f"{SCHEMAS}{orders['id']}/").json()
    assert body["source"] == {
        "id": source_id,
        "source_type": "Postgres",
        "supports_column_selection": True,
        "access_method": "warehouse",
        "user_access_level": "editor",
    }
    assert (
        body["sync_frequency"] == "6hour" and body["status"] == "Running"
    )  # its first sync is requested at creation


def test_missing_schema_is_404(api: Api) -> None:
    assert_drf(api.get(f"{SCHEMAS}nope/"), "Not found.", status=404)


# --- PATCH: what is accepted ----------------------------------------------------------------------


def test_patch_frequency_and_time_reschedule(
    api: Api, backend: EmbeddedBackend, orders: dict[str, Any]
) -> None:
    set_schema(backend, orders["id"], next_sync_at=None, last_synced_at="2024-01-01T00:00:00Z")
    response = patch(api, orders, {"sync_frequency": "24hour", "sync_time_of_day": "02:15:00"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sync_frequency"] == "24hour" and body["sync_time_of_day"] == "02:15:00"
    assert next_sync_at(backend, orders["id"]) is not None, "the sync service recomputed the next run"
    assert (
        patch(api, orders, {"sync_time_of_day": None, "sync_frequency": "never"}).json()["sync_time_of_day"]
        is None
    )


def test_patch_disable_and_enable(api: Api, backend: EmbeddedBackend, orders: dict[str, Any]) -> None:
    assert patch(api, orders, {"should_sync": False}).json()["should_sync"] is False
    assert next_sync_at(backend, orders["id"]) is None
    assert patch(api, orders, {"should_sync": True}).json()["should_sync"] is True
    assert next_sync_at(backend, orders["id"]) is not None


def test_patch_sync_type_and_field(api: Api, backend: EmbeddedBackend, events: dict[str, Any]) -> None:
    body = patch(
        api,
        events,
        {
            "sync_type": "append",
            "incremental_field": "seq",
            "incremental_field_type": "integer",
            "should_sync": True,
        },
    ).json()
    assert body["sync_type"] == "append" and body["incremental"] is False
    assert body["incremental_field"] == "seq" and body["incremental_field_type"] == "integer"


def test_changing_the_incremental_field_resets_the_cursor(
    api: Api, backend: EmbeddedBackend, orders: dict[str, Any]
) -> None:
    set_schema(backend, orders["id"], sync_cursor='"2024-05-01T00:00:00Z"')
    assert patch(api, orders, {"incremental_field": "updated_at"}).status_code == 200
    row = backend.store.query_one("SELECT sync_cursor FROM schemas WHERE id = ?", (orders["id"],))
    assert row is not None and row["sync_cursor"] is not None, "the same field keeps the cursor"
    patch(api, orders, {"incremental_field": "id", "incremental_field_type": "integer"})
    row = backend.store.query_one("SELECT sync_cursor FROM schemas WHERE id = ?", (orders["id"],))
    assert row is not None and row["sync_cursor"] is None


def test_enabled_columns(api: Api, orders: dict[str, Any]) -> None:
    assert patch(api, orders, {"enabled_columns": ["id", "amount"]}).json()["enabled_columns"] == [
        "id",
        "amount",
    ]
    assert patch(api, orders, {"enabled_columns": None}).json()["enabled_columns"] is None
    response = patch(api, orders, {"enabled_columns": ["id", "ghost", "alpha"]})
    assert_drf(
        response,
        "Unknown columns in enabled_columns: ['alpha', 'ghost']. Run refresh_schemas on the source to pick up new columns.",
    )


def test_primary_key_can_change_before_data_but_not_after(
    api: Api, backend: EmbeddedBackend, orders: dict[str, Any]
) -> None:
    assert patch(api, orders, {"primary_key_columns": ["id", "note"]}).json()["primary_key_columns"] == [
        "id",
        "note",
    ]
    land_table(backend, orders["id"])
    response = patch(api, orders, {"primary_key_columns": ["id"]})
    assert_drf(
        response,
        "Primary key cannot be changed after data has been synced. Delete the synced data first, then change the primary key.",
    )
    assert patch(api, orders, {"primary_key_columns": ["id", "note"]}).status_code == 200, "unchanged is fine"


# --- PATCH: every refusal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"sync_frequency": "1min"}, None),
        ({"sync_time_of_day": "25:00:00"}, "Invalid sync time of day"),
        ({"sync_time_of_day": "12:00"}, "Invalid sync time of day"),
        ({"sync_time_of_day": 7}, "Invalid sync time of day"),
        ({"sync_type": "cdc"}, None),
        ({"sync_type": "webhook"}, None),
        ({"sync_type": "teleport"}, '"teleport" is not a valid choice.'),
        ({"sync_frequency": "2hour"}, '"2hour" is not a valid choice.'),
        ({"should_sync": "perhaps"}, "Must be a valid boolean."),
        ({"enabled_columns": "id"}, 'Expected a list of items but got type "str".'),
    ],
)
def test_patch_refusals(api: Api, orders: dict[str, Any], body: dict[str, Any], detail: str | None) -> None:
    response = patch(api, orders, body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "validation_error"
    if detail is not None:
        assert response.json()["detail"] == detail


def test_one_minute_is_only_for_cdc(api: Api, orders: dict[str, Any]) -> None:
    assert_drf(
        patch(api, orders, {"sync_frequency": "1min"}),
        "A 1-minute sync frequency is only available for CDC schemas. "
        "The fastest frequency for other sync types is 5 minutes.",
    )


def test_enabling_needs_a_sync_type(api: Api, events: dict[str, Any]) -> None:
    assert_drf(
        patch(api, events, {"should_sync": True}), "Sync type must be set up first before enabling schema"
    )


def test_incremental_needs_a_field(api: Api, events: dict[str, Any]) -> None:
    response = patch(api, events, {"sync_type": "incremental", "should_sync": True})
    assert response.status_code == 400 and response.json()["attr"] == "incremental_field"


def test_cdc_needs_cdc_on_the_source(api: Api, orders: dict[str, Any]) -> None:
    response = patch(api, orders, {"sync_type": "cdc"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "CDC must be enabled on the source before selecting it as a sync type."
    )


def test_cdc_needs_a_primary_key(
    api: Api, backend: EmbeddedBackend, source_id: str, events: dict[str, Any]
) -> None:
    enable_cdc(backend, source_id)
    assert_drf(
        patch(api, events, {"sync_type": "cdc"}),
        "CDC requires a primary key on table 'events'. "
        "Provide primary_key_columns or refresh schema discovery to pick one up.",
    )
    # Set up without enabling (a key given), then enabled after the key is cleared behind its back.
    assert patch(api, events, {"sync_type": "cdc", "primary_key_columns": ["seq"]}).status_code == 200
    set_schema(backend, events["id"], primary_key_columns=None)
    assert_drf(
        patch(api, events, {"should_sync": True}),
        "CDC requires a primary key on table 'events'. Add a primary key on the source table and retry.",
    )


def test_cdc_with_a_primary_key_and_one_minute(
    api: Api, backend: EmbeddedBackend, source_id: str, orders: dict[str, Any]
) -> None:
    enable_cdc(backend, source_id)
    body = patch(
        api, orders, {"sync_type": "cdc", "sync_frequency": "1min", "cdc_table_mode": "cdc_only"}
    ).json()
    assert (
        body["sync_type"] == "cdc"
        and body["sync_frequency"] == "1min"
        and body["cdc_table_mode"] == "cdc_only"
    )
    land_table(backend, orders["id"])
    assert_drf(
        patch(api, orders, {"sync_type": "cdc", "primary_key_columns": ["note"]}),
        "Primary key cannot be changed after data has been synced. Delete the synced data first, then change the primary key.",
    )
    # Leaving CDC while on 1min: PostHog clamps the cadence to the 5-minute floor.
    left = patch(api, orders, {"sync_type": "full_refresh"})
    assert left.status_code == 200 and left.json()["sync_frequency"] == "5min"


def test_webhook_sync_needs_a_webhook_source(api: Api, orders: dict[str, Any]) -> None:
    response = patch(api, orders, {"sync_type": "webhook"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("orders cannot be synced via webhooks")


def test_a_refused_patch_changes_nothing(api: Api, orders: dict[str, Any]) -> None:
    patch(api, orders, {"sync_frequency": "12hour", "sync_time_of_day": "bad"})
    assert api.get(f"{SCHEMAS}{orders['id']}/").json()["sync_frequency"] == "6hour"


# --- bulk update ----------------------------------------------------------------------------------


def test_bulk_update_applies_all(
    api: Api, source_id: str, orders: dict[str, Any], events: dict[str, Any]
) -> None:
    response = api.patch(
        f"{SOURCES}{source_id}/bulk_update_schemas/",
        {
            "schemas": [
                {"id": orders["id"], "sync_frequency": "1hour", "primary_key_columns": ["note"]},
                {"id": events["id"], "sync_type": "full_refresh", "should_sync": True},
            ]
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert [schema["id"] for schema in updated] == [orders["id"], events["id"]]
    assert updated[0]["sync_frequency"] == "1hour"
    assert updated[0]["primary_key_columns"] == ["id"], "bulk updates take only the documented fields"
    assert updated[1]["should_sync"] is True and updated[1]["sync_type"] == "full_refresh"


def test_bulk_update_is_all_or_nothing(
    api: Api, source_id: str, orders: dict[str, Any], events: dict[str, Any]
) -> None:
    response = api.patch(
        f"{SOURCES}{source_id}/bulk_update_schemas/",
        {
            "schemas": [
                {"id": orders["id"], "sync_frequency": "1hour"},
                {"id": events["id"], "should_sync": True},
            ]
        },
    )
    assert_drf(response, "Sync type must be set up first before enabling schema")
    assert api.get(f"{SCHEMAS}{orders['id']}/").json()["sync_frequency"] == "6hour"


@pytest.mark.parametrize(
    ("body", "detail", "attr"),
    [
        ({}, "This field is required.", "schemas"),
        ({"schemas": []}, "This list may not be empty.", "schemas"),
        ({"schemas": {"id": "x"}}, 'Expected a list of items but got type "dict".', "schemas"),
        ({"schemas": [{"should_sync": True}]}, "This field is required.", "schemas__0__id"),
        ({"schemas": [{"id": "not-a-uuid"}]}, "Must be a valid UUID.", "schemas__0__id"),
        ({"schemas": ["x"]}, "Invalid data. Expected a dictionary, but got str.", "schemas__0"),
        (
            {"schemas": [{"id": "6a1a1ad0-0000-4000-8000-000000000000"}]},
            "One or more schemas could not be found for this source",
            None,
        ),
    ],
)
def test_bulk_update_refusals(
    api: Api, source_id: str, body: dict[str, Any], detail: str, attr: str | None
) -> None:
    assert_drf(api.patch(f"{SOURCES}{source_id}/bulk_update_schemas/", body), detail, attr=attr)


def test_bulk_update_refuses_duplicates_and_foreign_schemas(
    api: Api, shared_pg: Database, source_id: str, orders: dict[str, Any]
) -> None:
    url = f"{SOURCES}{source_id}/bulk_update_schemas/"
    assert_drf(
        api.patch(url, {"schemas": [{"id": orders["id"]}, {"id": orders["id"].upper()}]}),
        "Schema updates must contain unique ids",
    )
    other = api.create_source("Postgres", {**shared_pg.config, "schemas": [orders_schema()]}, prefix="other")
    foreign = api.schema_by_name(other, "orders")
    assert_drf(
        api.patch(url, {"schemas": [{"id": foreign["id"]}]}),
        "One or more schemas could not be found for this source",
    )


# --- actions --------------------------------------------------------------------------------------


def test_cancel_without_a_running_sync(api: Api, backend: EmbeddedBackend, orders: dict[str, Any]) -> None:
    set_schema(backend, orders["id"], status="Completed")
    response = api.post(f"{SCHEMAS}{orders['id']}/cancel/")
    assert response.status_code == 400
    assert response.json() == {"detail": "No running sync to cancel."}


def test_cancel_a_running_sync(
    api: Api, backend: EmbeddedBackend, source_id: str, orders: dict[str, Any]
) -> None:
    job_id = add_job(backend, source_id, orders["id"], "Running", "2024-01-01T00:00:00Z")
    response = api.post(f"{SCHEMAS}{orders['id']}/cancel/")
    assert response.status_code == 200 and response.content == b""
    row = backend.store.query_one("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
    assert row is not None and row["cancel_requested"] == 1


def test_reload_and_resync(api: Api, backend: EmbeddedBackend, orders: dict[str, Any]) -> None:
    set_schema(backend, orders["id"], next_sync_at=None, sync_cursor="5")
    assert api.post(f"{SCHEMAS}{orders['id']}/reload/").status_code == 200
    assert next_sync_at(backend, orders["id"]) is not None
    assert api.post(f"{SCHEMAS}{orders['id']}/resync/").status_code == 200
    row = backend.store.query_one("SELECT sync_cursor FROM schemas WHERE id = ?", (orders["id"],))
    assert row is not None and row["sync_cursor"] is None


def test_delete_data_forgets_the_table(api: Api, backend: EmbeddedBackend, orders: dict[str, Any]) -> None:
    land_table(backend, orders["id"])
    response = api.delete(f"{SCHEMAS}{orders['id']}/delete_data/")
    assert response.status_code == 200, response.text
    body = api.get(f"{SCHEMAS}{orders['id']}/").json()
    assert body["table"] is None and body["last_synced_at"] is None


def test_destroy_a_schema(api: Api, source_id: str, orders: dict[str, Any]) -> None:
    assert api.delete(f"{SCHEMAS}{orders['id']}/").status_code == 204
    assert_drf(api.get(f"{SCHEMAS}{orders['id']}/"), "Not found.", status=404)
    assert [schema["name"] for schema in api.source(source_id)["schemas"]] == ["events"]


def test_incremental_fields_rediscovers_the_table(api: Api, postgres_db: Database) -> None:
    orders = api.schema_by_name(create(api, pg_with_tables(postgres_db)), "orders")
    postgres_db.execute("ALTER TABLE orders ADD COLUMN modified_at timestamptz")
    response = api.post(f"{SCHEMAS}{orders['id']}/incremental_fields/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "incremental_fields",
        "incremental_available",
        "append_available",
        "cdc_available",
        "xmin_available",
        "full_refresh_available",
        "supports_webhooks",
        "webhook_only",
        "available_columns",
        "detected_primary_keys",
    }
    assert "modified_at" in {field["field"] for field in body["incremental_fields"]}
    assert body["detected_primary_keys"] == ["id"] and body["full_refresh_available"] is True
    assert body["cdc_available"] is None, "the source has no CDC"
    assert body["xmin_available"] is True, "a Postgres table: the embedded engine runs xmin"


def test_incremental_fields_for_a_vanished_table(api: Api, postgres_db: Database) -> None:
    orders = api.schema_by_name(create(api, pg_with_tables(postgres_db)), "orders")
    postgres_db.execute("DROP TABLE orders")
    assert message(api.post(f"{SCHEMAS}{orders['id']}/incremental_fields/")).startswith(
        "Could not discover schema orders. The connection may be missing SELECT"
    )
