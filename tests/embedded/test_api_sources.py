"""external_data_sources/: create, read, update, delete and the per-source actions, on real databases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import CANARY_PASSWORD, Database
from tests.embedded.api_support import (
    SOURCES,
    Api,
    add_job,
    api,
    assert_drf,
    assert_message,
    backend,
    land_table,
    my_with_tables,
    orders_schema,
    pg_with_tables,
    set_schema,
    shared_pg,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors import registry

__all__ = ["api", "backend", "shared_pg"]  # fixtures

SOURCE_FIELDS = [
    "id",
    "created_at",
    "created_by",
    "created_via",
    "status",
    "source_type",
    "latest_error",
    "prefix",
    "description",
    "access_method",
    "direct_query_enabled",
    "engine",
    "last_run_at",
    "schemas",
    "job_inputs",
    "revenue_analytics_config",
    "user_access_level",
    "supports_webhooks",
    "supports_column_selection",
]
SCHEMA_FIELDS = [
    "id",
    "name",
    "label",
    "table",
    "should_sync",
    "last_synced_at",
    "latest_error",
    "incremental",
    "status",
    "sync_type",
    "incremental_field",
    "incremental_field_type",
    "sync_frequency",
    "sync_time_of_day",
    "description",
    "primary_key_columns",
    "cdc_table_mode",
    "enabled_columns",
    "available_columns",
    "source",
]


@pytest.fixture
def pg(shared_pg: Database) -> Database:
    """The module's Postgres database: tests that change it use `postgres_db` instead."""
    return shared_pg


@pytest.fixture
def my(mysql_db: Database) -> Database:
    return my_with_tables(mysql_db)


def pg_payload(pg: Database, *schemas: dict[str, Any]) -> dict[str, Any]:
    return {**pg.config, "schemas": list(schemas) or [orders_schema()]}


# --- create ---------------------------------------------------------------------------------------


def test_create_stores_the_source_and_starts_enabled_syncs(
    api: Api, backend: EmbeddedBackend, pg: Database
) -> None:
    response = api.post(
        SOURCES,
        {"source_type": "Postgres", "payload": pg_payload(pg), "prefix": "shop", "description": "the shop"},
    )
    assert response.status_code == 201
    assert list(response.json()) == ["id"]
    source = api.source(response.json()["id"])

    assert list(source) == SOURCE_FIELDS
    assert source["source_type"] == "Postgres"
    assert source["prefix"] == "shop" and source["description"] == "the shop"
    assert source["created_via"] == "api" and source["access_method"] == "warehouse"
    assert source["created_by"] is None and source["engine"] is None and source["last_run_at"] is None
    assert source["status"] == "Running" and source["latest_error"] is None
    assert source["user_access_level"] == "editor"
    assert source["supports_webhooks"] is False and source["supports_column_selection"] is True
    assert source["revenue_analytics_config"] == {"enabled": False, "include_invoiceless_charges": True}
    assert source["job_inputs"] == {key: value for key, value in pg.config.items() if key != "password"}

    # Every discovered table is a schema (ordered by name); only the given one is enabled.
    events, orders = source["schemas"]
    assert list(orders) == SCHEMA_FIELDS
    assert orders["name"] == "orders" and orders["should_sync"] is True
    assert orders["sync_type"] == "incremental" and orders["incremental"] is True
    assert orders["incremental_field"] == "updated_at" and orders["incremental_field_type"] == "timestamp"
    assert orders["sync_frequency"] == "6hour" and orders["primary_key_columns"] == ["id"]
    assert orders["cdc_table_mode"] == "consolidated" and orders["table"] is None and orders["source"] is None
    assert {column["name"] for column in orders["available_columns"]} == {
        "id",
        "amount",
        "note",
        "updated_at",
    }
    assert set(orders["available_columns"][0]) == {"name", "data_type", "is_nullable"}
    assert events["name"] == "events" and events["should_sync"] is False and events["sync_type"] is None

    scheduled = {
        row["name"]: row["next_sync_at"]
        for row in backend.store.query(
            "SELECT name, next_sync_at FROM schemas WHERE source_id = ?", (source["id"],)
        )
    }
    assert scheduled["orders"] is not None, "an enabled schema is asked to sync now"
    assert scheduled["events"] is None


def test_the_password_is_stored_encrypted_only(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    assert CANARY_PASSWORD.encode() not in (backend.home / "metadata.sqlite3").read_bytes()
    row = backend.store.query_one("SELECT job_inputs FROM sources WHERE id = ?", (source_id,))
    assert row is not None and "password" not in json.loads(row["job_inputs"])


def test_create_a_mysql_source(api: Api, my: Database) -> None:
    schema = {
        "name": "customers",
        "should_sync": True,
        "sync_type": "full_refresh",
        "sync_time_of_day": "03:30:00",
        "enabled_columns": ["id", "name"],
    }
    source_id = api.create_source("MySQL", {**my.config, "schemas": [schema]}, created_via="mcp")
    source = api.source(source_id)
    assert source["created_via"] == "mcp"
    customers = api.schema_by_name(source_id, "customers")
    assert customers["sync_type"] == "full_refresh" and customers["incremental"] is False
    assert customers["sync_time_of_day"] == "03:30:00" and customers["enabled_columns"] == ["id", "name"]
    assert [schema["name"] for schema in source["schemas"]] == ["customers", "logs"]


def test_strings_in_the_payload_are_stripped(api: Api, pg: Database) -> None:
    payload = {**pg_payload(pg), "host": f"  {pg.config['host']} ", "database": f"{pg.config['database']}\n"}
    source_id = api.create_source("Postgres", payload)
    assert api.source(source_id)["job_inputs"]["host"] == pg.config["host"]


def test_unknown_payload_keys_are_not_stored(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", {**pg_payload(pg), "stray": "x"})
    row = backend.store.query_one("SELECT job_inputs FROM sources WHERE id = ?", (source_id,))
    assert row is not None and "stray" not in row["job_inputs"] and "schemas" not in row["job_inputs"]
    assert "stray" not in api.source(source_id)["job_inputs"]


@pytest.mark.parametrize(
    ("body", "detail", "attr", "code"),
    [
        ({"payload": {}}, "This field is required.", "source_type", "required"),
        (
            {"source_type": "Nope", "payload": {}},
            '"Nope" is not a valid choice.',
            "source_type",
            "invalid_choice",
        ),
        ({"source_type": "Postgres"}, "This field is required.", "payload", "required"),
        (
            {"source_type": "Postgres", "payload": "x"},
            'Expected a dictionary of items but got type "str".',
            "payload",
            "not_a_dict",
        ),
        (
            {"source_type": "Postgres", "payload": {}, "prefix": "p" * 101},
            "Ensure this field has no more than 100 characters.",
            "prefix",
            "max_length",
        ),
        (
            {"source_type": "Postgres", "payload": {}, "description": "d" * 401},
            "Ensure this field has no more than 400 characters.",
            "description",
            "max_length",
        ),
        (
            {"source_type": "Postgres", "payload": {}, "access_method": "teleport"},
            '"teleport" is not a valid choice.',
            "access_method",
            "invalid_choice",
        ),
    ],
)
def test_create_field_errors_are_drf_shaped(
    api: Api, body: dict[str, Any], detail: str, attr: str, code: str
) -> None:
    response = api.post(SOURCES, body)
    assert_drf(response, detail, attr=attr)
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("prefix", "detail"),
    [
        ("___", "Prefix cannot consist of only underscores"),
        (
            "9lives",
            "Prefix must contain only letters, numbers, and underscores, and start with a letter or underscore",
        ),
        (
            "has space",
            "Prefix must contain only letters, numbers, and underscores, and start with a letter or underscore",
        ),
    ],
)
def test_prefix_format_errors(api: Api, prefix: str, detail: str) -> None:
    response = api.post(SOURCES, {"source_type": "Postgres", "payload": {}, "prefix": prefix})
    assert_drf(response, detail)


def test_prefixes_with_underscores_at_the_ends_are_fine(api: Api, pg: Database) -> None:
    assert (
        api.post(
            SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg), "prefix": "_ok_"}
        ).status_code
        == 201
    )


def test_prefix_uniqueness(api: Api, pg: Database) -> None:
    api.create_source("Postgres", pg_payload(pg))
    again = api.post(SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg)})
    assert_message(again, "Source type already exists. Prefix is required")
    api.create_source("Postgres", pg_payload(pg), prefix="one")
    assert_message(
        api.post(SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg), "prefix": "one"}),
        "Prefix already exists",
    )
    assert (
        api.post(SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg), "prefix": "two"}).status_code
        == 201
    )


def test_a_deleted_source_frees_its_prefix(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    assert api.delete(f"{SOURCES}{source_id}/").status_code == 204
    assert api.post(SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg)}).status_code == 201


def test_direct_mode_is_only_for_databases(api: Api) -> None:
    response = api.post(SOURCES, {"source_type": "Stripe", "payload": {}, "access_method": "direct"})
    assert_message(response, "Direct query mode is currently supported only for Postgres and MySQL sources.")


def test_a_direct_source_needs_a_name_and_never_syncs(
    api: Api, backend: EmbeddedBackend, pg: Database
) -> None:
    nameless = api.post(
        SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg), "access_method": "direct"}
    )
    assert_message(nameless, "Name is required for direct query sources")
    source_id = api.create_source("Postgres", pg_payload(pg), access_method="direct", prefix=" live ")
    source = api.source(source_id)
    assert (
        source["access_method"] == "direct" and source["engine"] == "postgres" and source["prefix"] == "live"
    )
    assert source["direct_query_enabled"] is False, "PostHog's default; it is ignored for direct sources"
    assert all(schema["sync_type"] is None for schema in source["schemas"])
    assert api.get(f"{SOURCES}connections/").json() == [
        {"id": source_id, "prefix": "live", "engine": "postgres"}
    ]
    rows = backend.store.query("SELECT next_sync_at FROM schemas WHERE source_id = ?", (source_id,))
    assert all(row["next_sync_at"] is None for row in rows)


def test_connections_lists_only_direct_sources(api: Api, pg: Database) -> None:
    api.create_source("Postgres", pg_payload(pg))
    assert api.get(f"{SOURCES}connections/").json() == []


def test_a_type_without_an_embedded_connector_is_refused(api: Api) -> None:
    response = api.post(SOURCES, {"source_type": "Hubspot", "payload": {"schemas": []}})
    assert response.status_code == 400
    text = response.json()["message"]
    for runnable in registry.RUNNABLE_TYPES:
        assert runnable in text
    assert "POSTHOG_PERSONAL_API_KEY" in text and "Hubspot" in text


def test_config_validation_comes_before_the_live_check(api: Api, pg: Database) -> None:
    payload = {key: value for key, value in pg_payload(pg).items() if key != "database"}
    assert_message(
        api.post(SOURCES, {"source_type": "Postgres", "payload": payload}),
        "Invalid source config: Required field 'database' is missing",
    )


def test_wrong_credentials_are_refused_with_the_sources_message(api: Api, pg: Database) -> None:
    response = api.post(
        SOURCES, {"source_type": "Postgres", "payload": {**pg_payload(pg), "password": "wrong"}}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid credentials")
    assert "wrong" not in response.json()["message"]


@pytest.mark.parametrize(
    ("schemas", "text"),
    [
        (None, "Schemas not given"),
        ([], "Schemas not given"),
        ("orders", "Schemas not given"),
        (
            [{"name": "nope", "should_sync": True, "sync_type": "full_refresh"}],
            "Schemas given do not exist in source",
        ),
        ([{"should_sync": True}], "Schemas given do not exist in source"),
        (
            [orders_schema(incremental_field=None)],
            "Incremental schemas given do not have an incremental field set",
        ),
        (
            [orders_schema(sync_type="append", incremental_field_type=None)],
            "Incremental schemas given do not have an incremental field type set",
        ),
        (
            [orders_schema(sync_type="cdc")],
            "CDC must be enabled on the source before selecting it as a sync type. "
            "The following schemas requested CDC: orders.",
        ),
        (
            [{"name": "events", "should_sync": True, "sync_type": "cdc"}],
            "CDC requires a primary key on each table. The following tables have no primary key: events.",
        ),
        ([orders_schema(sync_type="magic")], None),
        ([orders_schema(sync_time_of_day="25:00")], None),
    ],
)
def test_schema_payload_errors(
    api: Api, backend: EmbeddedBackend, pg: Database, schemas: Any, text: str | None
) -> None:
    payload: dict[str, Any] = {**pg.config}
    if schemas is not None:
        payload["schemas"] = schemas
    if text and text.startswith("CDC requires"):
        payload["cdc_enabled"] = True
    response = api.post(SOURCES, {"source_type": "Postgres", "payload": payload})
    assert response.status_code == 400, response.text
    if text is not None:
        assert response.json() == {"message": text}
    else:
        assert "orders" in response.json()["message"]
    assert backend.store.query("SELECT id FROM sources") == [], "nothing is stored when create fails"


def test_incomplete_incremental_schemas_are_fine_when_disabled(api: Api, pg: Database) -> None:
    source_id = api.create_source(
        "Postgres", pg_payload(pg, orders_schema(should_sync=False, incremental_field=None))
    )
    assert api.schema_by_name(source_id, "orders")["should_sync"] is False


def test_xmin_at_create_needs_postgres_and_a_primary_key(
    api: Api, backend: EmbeddedBackend, pg: Database, my: Database
) -> None:
    xmin_events = {"name": "events", "should_sync": True, "sync_type": "xmin"}
    response = api.post(SOURCES, {"source_type": "Postgres", "payload": pg_payload(pg, xmin_events)})
    assert response.status_code == 400
    assert response.json()["message"].startswith("xmin replication requires a primary key on table 'events'")
    xmin_customers = {"name": "customers", "should_sync": True, "sync_type": "xmin"}
    response = api.post(
        SOURCES, {"source_type": "MySQL", "payload": {**my.config, "schemas": [xmin_customers]}}
    )
    assert response.json() == {"message": "xmin replication is only available for Postgres sources."}
    assert backend.store.query("SELECT id FROM sources") == []
    source_id = api.create_source("Postgres", pg_payload(pg, orders_schema(sync_type="xmin")))
    assert api.schema_by_name(source_id, "orders")["sync_type"] == "xmin"


def test_a_cdc_source_keeps_its_cdc_settings(api: Api, pg: Database) -> None:
    schema = {"name": "orders", "should_sync": True, "sync_type": "cdc", "cdc_table_mode": "both"}
    source_id = api.create_source("Postgres", {**pg_payload(pg, schema), "cdc_enabled": True})
    source = api.source(source_id)
    hex12 = source_id.replace("-", "")[:12]
    assert source["job_inputs"]["cdc_enabled"] is True
    assert source["job_inputs"]["cdc_management_mode"] == "posthog"
    assert source["job_inputs"]["cdc_slot_name"] == f"posthog_{hex12}"
    assert source["job_inputs"]["cdc_publication_name"] == f"posthog_pub_{hex12}"
    orders = api.schema_by_name(source_id, "orders")
    assert (
        orders["sync_type"] == "cdc"
        and orders["cdc_table_mode"] == "both"
        and orders["sync_frequency"] == "5min"
    )


# --- list and retrieve ----------------------------------------------------------------------------


def test_list_is_paginated_newest_first(api: Api, pg: Database) -> None:
    ids = [api.create_source("Postgres", pg_payload(pg), prefix=f"p{index}") for index in range(3)]
    first = api.get(f"{SOURCES}?limit=2").json()
    assert first["count"] == 3
    assert [source["id"] for source in first["results"]] == ids[::-1][:2]
    assert first["previous"] is None
    assert "limit=2" in first["next"] and "offset=2" in first["next"]
    second = api.get(first["next"]).json()
    assert [source["id"] for source in second["results"]] == [ids[0]]
    assert second["next"] is None
    assert "offset" not in second["previous"] and "limit=2" in second["previous"]
    middle = api.get(f"{SOURCES}?limit=1&offset=2").json()
    assert "offset=1" in middle["previous"]
    assert api.get(f"{SOURCES}?limit=abc&offset=-4").json()["count"] == 3


def test_list_search_matches_prefix_type_and_description(api: Api, pg: Database, my: Database) -> None:
    api.create_source("Postgres", pg_payload(pg), prefix="warehouse_one", description="Billing DB")
    api.create_source("MySQL", {**my.config, "schemas": [{"name": "logs", "should_sync": False}]})
    assert api.get(f"{SOURCES}?search=ONE").json()["count"] == 1
    assert api.get(f"{SOURCES}?search=mysql").json()["count"] == 1
    assert api.get(f"{SOURCES}?search=billing").json()["count"] == 1
    assert api.get(f"{SOURCES}?search=%25").json()["count"] == 0, "LIKE wildcards are literal"


def test_retrieving_a_missing_or_deleted_source_is_404(api: Api, pg: Database) -> None:
    assert_drf(api.get(f"{SOURCES}not-a-uuid/"), "Not found.", status=404)
    source_id = api.create_source("Postgres", pg_payload(pg))
    api.delete(f"{SOURCES}{source_id}/")
    assert_drf(api.get(f"{SOURCES}{source_id}/"), "Not found.", status=404)


# --- status, latest error, last run --------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "events", "expected"),
    [
        ({"status": "Failed"}, {"status": "Completed", "should_sync": 1}, "Failed"),
        ({"status": "BillingLimitReached"}, {"status": "Failed", "should_sync": 0}, "Billing limits"),
        ({"status": "BillingLimitTooLow"}, {}, "Billing limits too low"),
        ({"status": "Completed"}, {"status": "Paused", "should_sync": 1}, "Paused"),
        ({"status": "Completed"}, {"status": "Running", "should_sync": 1}, "Running"),
        ({"status": "Completed"}, {"status": "Failed", "should_sync": 0}, "Completed"),
        # A disabled schema counts only for the positive states when it holds an error.
        ({"status": "Completed", "should_sync": 0}, {"status": "Paused", "should_sync": 0}, "Running"),
        (
            {"status": None, "should_sync": 0},
            {"status": "Paused", "should_sync": 0, "latest_error": "x"},
            "Paused",
        ),
    ],
)
def test_source_status_is_computed_from_its_schemas(
    api: Api, backend: EmbeddedBackend, pg: Database, orders: dict, events: dict, expected: str
) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    set_schema(backend, api.schema_by_name(source_id, "orders")["id"], **orders)
    if events:
        set_schema(backend, api.schema_by_name(source_id, "events")["id"], **events)
    assert api.source(source_id)["status"] == expected


def test_latest_error_and_last_run(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    orders_id = api.schema_by_name(source_id, "orders")["id"]
    set_schema(backend, orders_id, latest_error="relation vanished", status="Failed")
    add_job(backend, source_id, orders_id, "Completed", "2024-03-01T10:00:00Z")
    add_job(backend, source_id, orders_id, "Completed", "2024-03-02T10:00:00Z")
    add_job(backend, source_id, orders_id, "Failed", "2024-03-03T10:00:00Z")
    source = api.source(source_id)
    assert source["latest_error"] == "relation vanished"
    assert source["last_run_at"] == "2024-03-02T10:00:00Z"
    assert source["status"] == "Failed"


def test_a_landed_table_is_shown(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    orders_id = api.schema_by_name(source_id, "orders")["id"]
    land_table(backend, orders_id, "shop_postgres_orders")
    table = api.schema_by_name(source_id, "orders")["table"]
    assert set(table) == {"id", "name", "columns", "row_count"}
    assert table["name"] == "shop_postgres_orders" and table["row_count"] == 2


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_newest_first_filtered_and_capped(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    orders_id = api.schema_by_name(source_id, "orders")["id"]
    events_id = api.schema_by_name(source_id, "events")["id"]
    for day in range(1, 29):
        add_job(backend, source_id, orders_id, "Completed", f"2024-02-{day:02d}T00:00:00Z")
        add_job(backend, source_id, events_id, "Failed", f"2024-02-{day:02d}T12:00:00Z")

    jobs = api.get(f"{SOURCES}{source_id}/jobs/").json()
    assert len(jobs) == 50
    assert jobs[0]["created_at"] == "2024-02-28T12:00:00Z"
    assert set(jobs[0]) == {
        "id",
        "created_at",
        "created_by",
        "finished_at",
        "status",
        "schema",
        "rows_synced",
        "latest_error",
        "workflow_run_id",
        "cdc_write_mode",
    }
    assert jobs[0]["schema"] == {
        "id": events_id,
        "name": "events",
        "label": None,
        "should_sync": False,
        "last_synced_at": None,
        "sync_type": None,
    }

    only_orders = api.get(f"{SOURCES}{source_id}/jobs/?schemas=orders").json()
    assert {job["schema"]["name"] for job in only_orders} == {"orders"} and len(only_orders) == 28
    both = api.get(f"{SOURCES}{source_id}/jobs/?schemas=orders&schemas=events").json()
    assert len(both) == 50

    window = api.get(
        f"{SOURCES}{source_id}/jobs/",
        params={"after": "2024-02-10T00:00:00Z", "before": "2024-02-12T00:00:00+00:00", "schemas": "orders"},
    ).json()
    assert [job["created_at"] for job in window] == ["2024-02-11T00:00:00Z"], "bounds are exclusive"


@pytest.mark.parametrize("param", ["after", "before"])
def test_jobs_timestamps_must_be_iso(api: Api, pg: Database, param: str) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.get(f"{SOURCES}{source_id}/jobs/", params={param: "last tuesday"})
    assert_drf(
        response, "'last tuesday' is not an ISO 8601 timestamp: use e.g. 2024-05-01T00:00:00Z.", attr=param
    )


# --- partial update -------------------------------------------------------------------------------


def test_patch_description_and_ignored_fields(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg), prefix="keep")
    response = api.patch(
        f"{SOURCES}{source_id}/",
        {"description": "new words", "prefix": "changed", "created_via": "web", "access_method": "warehouse"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "new words"
    assert body["prefix"] == "keep", "a warehouse source's prefix never changes"
    assert body["created_via"] == "api"


def test_patch_access_method_is_refused(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(f"{SOURCES}{source_id}/", {"access_method": "direct"})
    assert_drf(response, "Access method cannot be changed. Create a new source instead.")


def test_patch_job_inputs_keeps_the_stored_password(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    echoed = api.source(source_id)["job_inputs"]
    response = api.patch(
        f"{SOURCES}{source_id}/", {"job_inputs": {**echoed, "password": "", "schema": "public"}}
    )
    assert response.status_code == 200, response.text
    # The merged config passed the live check, so the stored password was kept.
    orders_id = api.schema_by_name(source_id, "orders")["id"]
    assert api.post(f"external_data_schemas/{orders_id}/incremental_fields/").status_code == 200


def test_patch_job_inputs_is_rechecked_against_the_source(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(f"{SOURCES}{source_id}/", {"job_inputs": {"password": "not-it"}})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["detail"].startswith("Invalid credentials")


def test_patch_job_inputs_is_validated_against_the_form(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(f"{SOURCES}{source_id}/", {"job_inputs": {"database": ""}})
    assert_drf(response, "Invalid source config: Required field 'database' is missing")


@pytest.mark.parametrize(
    ("job_inputs", "detail"),
    [
        ({"host": "localhost"}, "Changing the connection host requires re-entering your credentials."),
        (
            {"host": "localhost", "password": ""},
            "Changing the connection host requires re-entering your credentials.",
        ),
        (
            {"ssh_tunnel": {"enabled": True, "host": "bastion.example.com", "port": 22}},
            "Changing the SSH tunnel requires re-entering your database credentials.",
        ),
    ],
)
def test_patch_refuses_to_send_a_stored_secret_elsewhere(
    api: Api, pg: Database, job_inputs: dict[str, Any], detail: str
) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    assert_drf(api.patch(f"{SOURCES}{source_id}/", {"job_inputs": job_inputs}), detail)


def test_patch_host_with_the_password_re_entered_works(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(
        f"{SOURCES}{source_id}/", {"job_inputs": {"host": "localhost", "password": CANARY_PASSWORD}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["job_inputs"]["host"] == "localhost"


def test_patch_job_inputs_must_be_an_object(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(f"{SOURCES}{source_id}/", {"job_inputs": "host=x"})
    assert_drf(response, 'Expected a dictionary of items but got type "str".', attr="job_inputs")


def test_patch_a_direct_sources_name(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg), access_method="direct", prefix="live")
    assert api.patch(f"{SOURCES}{source_id}/", {"prefix": " renamed "}).json()["prefix"] == "renamed"
    assert_drf(
        api.patch(f"{SOURCES}{source_id}/", {"prefix": "  "}), "Name is required for direct query sources"
    )


# --- destroy, reload, refresh ---------------------------------------------------------------------


def test_destroy_soft_deletes_source_and_schemas(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.delete(f"{SOURCES}{source_id}/")
    assert response.status_code == 204 and response.content == b""
    assert backend.store.query_one("SELECT deleted FROM sources WHERE id = ?", (source_id,))["deleted"] == 1  # type: ignore[index]
    schemas = backend.store.query(
        "SELECT deleted, should_sync FROM schemas WHERE source_id = ?", (source_id,)
    )
    assert schemas and all(row["deleted"] == 1 and row["should_sync"] == 0 for row in schemas)
    assert api.get(SOURCES).json()["count"] == 0
    assert api.get("external_data_schemas/").json()["count"] == 0


def test_reload_asks_every_enabled_schema_to_sync(api: Api, backend: EmbeddedBackend, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    with backend.store.transaction() as db:
        db.execute("UPDATE schemas SET next_sync_at = NULL WHERE source_id = ?", (source_id,))
    response = api.post(f"{SOURCES}{source_id}/reload/")
    assert response.status_code == 200 and response.content == b""
    due = {
        row["name"]: row["next_sync_at"]
        for row in backend.store.query(
            "SELECT name, next_sync_at FROM schemas WHERE source_id = ?", (source_id,)
        )
    }
    assert due["orders"] is not None and due["events"] is None


def test_refresh_schemas_adds_new_and_retires_vanished_tables(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    source_id = api.create_source("Postgres", pg_payload(pg, orders_schema(), {"name": "events"}))
    land_table(backend, api.schema_by_name(source_id, "orders")["id"])
    pg.execute(
        "CREATE TABLE fresh (id int PRIMARY KEY)",
        "DROP TABLE events",
        "ALTER TABLE orders RENAME TO orders_old",
        "ALTER TABLE orders_old ADD COLUMN extra int",
    )
    response = api.post(f"{SOURCES}{source_id}/refresh_schemas/")
    # Only the schema nobody enabled and without data (events) is deleted, and counted, as PostHog counts.
    assert response.json() == {"added": 2, "deleted": 1, "total_tables_seen": 2}
    names = {schema["name"]: schema for schema in api.source(source_id)["schemas"]}
    assert set(names) == {"fresh", "orders", "orders_old"}, "a table that holds data is kept, disabled"
    assert names["orders"]["should_sync"] is False and names["orders"]["table"] is not None
    assert names["orders"]["status"] == "Completed"
    assert names["fresh"]["should_sync"] is False and names["fresh"]["primary_key_columns"] == ["id"]
    assert "extra" in {column["name"] for column in names["orders_old"]["available_columns"]}


def test_refresh_schemas_reports_an_unreachable_source(
    api: Api, backend: EmbeddedBackend, pg: Database
) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    with backend.store.transaction() as db:
        config = json.loads(
            db.execute("SELECT job_inputs FROM sources WHERE id = ?", (source_id,)).fetchone()[0]
        )
        config["port"] = 1
        db.execute("UPDATE sources SET job_inputs = ? WHERE id = ?", (json.dumps(config), source_id))
    response = api.post(f"{SOURCES}{source_id}/refresh_schemas/")
    assert response.status_code == 400 and "Could not connect" in response.json()["message"]


# --- revenue analytics, wizard, prefix, database schema -----------------------------------------


def test_revenue_analytics_config(api: Api, pg: Database) -> None:
    source_id = api.create_source("Postgres", pg_payload(pg))
    response = api.patch(f"{SOURCES}{source_id}/revenue_analytics_config/", {"enabled": True})
    assert response.status_code == 200
    assert response.json()["revenue_analytics_config"] == {
        "enabled": True,
        "include_invoiceless_charges": True,
    }
    assert list(response.json()) == SOURCE_FIELDS
    response = api.patch(
        f"{SOURCES}{source_id}/revenue_analytics_config/", {"include_invoiceless_charges": False}
    )
    assert response.json()["revenue_analytics_config"] == {
        "enabled": True,
        "include_invoiceless_charges": False,
    }
    bad = api.patch(f"{SOURCES}{source_id}/revenue_analytics_config/", {"enabled": "maybe"})
    assert_drf(bad, "Must be a valid boolean.", attr="enabled")


def test_wizard_answers_every_form_and_filters(api: Api) -> None:
    everything = api.get(f"{SOURCES}wizard/").json()
    assert set(everything) == set(registry.SOURCE_TYPES)
    assert everything["Postgres"]["name"] == "Postgres" and "fields" in everything["Postgres"]
    some = api.get(f"{SOURCES}wizard/?source_type=Stripe, MySQL").json()
    assert set(some) == {"Stripe", "MySQL"}
    assert_message(
        api.get(f"{SOURCES}wizard/?source_type=Stripe,Nope,Alas"),
        "Unknown source_type(s): Alas, Nope. Omit source_type to list every available type.",
    )


def test_source_prefix(api: Api, pg: Database) -> None:
    url = f"{SOURCES}source_prefix/"
    ok = api.post(url, {"source_type": "Postgres", "prefix": "fresh"})
    assert ok.status_code == 200 and ok.content == b""
    assert api.post(url, {"source_type": "Postgres"}).status_code == 200
    api.create_source("Postgres", pg_payload(pg))
    api.create_source("Postgres", pg_payload(pg), prefix="taken")
    assert_message(
        api.post(url, {"source_type": "Postgres"}), "Source type already exists. Prefix is required"
    )
    assert_message(api.post(url, {"source_type": "Postgres", "prefix": "taken"}), "Prefix already exists")
    assert api.post(url, {"source_type": "MySQL", "prefix": "taken"}).status_code == 200
    assert_drf(
        api.post(url, {"source_type": "Postgres", "prefix": "__"}),
        "Prefix cannot consist of only underscores",
    )
    assert_message(api.post(url, {"prefix": "x"}), "Missing required parameter: source_type")
    assert_message(
        api.post(url, {"source_type": "Stripe", "prefix": "x", "access_method": "direct"}),
        "Direct query mode is currently supported only for Postgres and MySQL sources.",
    )
    assert_message(
        api.post(url, {"source_type": "MySQL", "access_method": "direct"}),
        "Name is required for direct query sources",
    )


def test_database_schema_lists_tables_without_creating_anything(
    api: Api, backend: EmbeddedBackend, pg: Database
) -> None:
    response = api.post(f"{SOURCES}database_schema/", {"source_type": "Postgres", **pg.config})
    assert response.status_code == 200, response.text
    tables = {table["table"]: table for table in response.json()}
    assert set(tables) == {"events", "orders"}
    orders = tables["orders"]
    assert set(orders) == {
        "table",
        "label",
        "should_sync",
        "incremental_fields",
        "incremental_available",
        "append_available",
        "cdc_available",
        "xmin_available",
        "incremental_field",
        "sync_type",
        "rows",
        "supports_webhooks",
        "webhook_only",
        "description",
        "should_sync_default",
        "available_columns",
        "detected_primary_keys",
        "permission_error",
        "rls_warning",
    }
    assert orders["should_sync"] is False and orders["sync_type"] is None
    assert orders["detected_primary_keys"] == ["id"]
    assert {"field": "updated_at", "label": "updated_at"}.items() <= next(
        field for field in orders["incremental_fields"] if field["field"] == "updated_at"
    ).items()
    assert set(orders["available_columns"][0]) == {"field", "label", "type", "nullable"}
    assert backend.store.query("SELECT id FROM sources") == []


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({}, "Missing required parameter: source_type"),
        ({"source_type": "Nope"}, "Unknown source_type 'Nope'"),
        (
            {"source_type": "Postgres", "host": "127.0.0.1"},
            "Invalid source config: Required field 'port' is missing",
        ),
    ],
)
def test_database_schema_errors(api: Api, body: dict[str, Any], text: str) -> None:
    assert_message(api.post(f"{SOURCES}database_schema/", body), text)


def test_database_schema_on_mysql(api: Api, my: Database) -> None:
    response = api.post(f"{SOURCES}database_schema/", {"source_type": "MySQL", **my.config})
    assert [table["table"] for table in response.json()] == ["customers", "logs"]
    wrong = api.post(f"{SOURCES}database_schema/", {"source_type": "MySQL", **my.config, "password": "bad"})
    assert wrong.status_code == 400 and wrong.json()["message"].startswith("Invalid credentials")
