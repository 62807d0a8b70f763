"""Issue 17: the embedded API answers as PostHog's own server does (docs/posthog-differences.md lists the
deliberate differences). One test per finding, over the real local Postgres/MariaDB and the local
Stripe-protocol server; the Stripe-specific findings are in test_api_stripe_fidelity.py.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Database
from tests.embedded.api_support import (
    SCHEMAS,
    SOURCES,
    Api,
    api,
    assert_drf,
    assert_message,
    backend,
    land_table,
    message,
    my_with_tables,
    orders_schema,
    pg_with_tables,
    set_schema,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.store import jobs, source_records, utcnow
from warehouse_mcp.embedded.sync.engine import JobProgress, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse

__all__ = ["api", "backend"]  # fixtures

CANCELLED = "Sync cancelled by user"


def pg_source(api: Api, db: Database, *schemas: dict[str, Any]) -> str:
    return api.create_source("Postgres", {**db.config, "schemas": list(schemas) or [orders_schema()]})


def break_connection(backend: EmbeddedBackend, source_id: str, config: dict[str, Any]) -> None:
    """Point a stored source at a port nobody listens on, as if its server went away."""
    job_inputs, secret = source_records.encode_config(backend.vault, "Postgres", {**config, "port": 1})
    with backend.store.transaction() as db:
        source_records.update(db, source_id, {"job_inputs": job_inputs, "job_inputs_secret": secret})


# --- 3. cancel ------------------------------------------------------------------------------------


def test_cancel_fails_the_run_and_the_schema_with_posthogs_reason(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    pg.execute("INSERT INTO orders SELECT g, g, 'n', now() FROM generate_series(3, 2000) g")
    source_id = pg_source(api, pg, orders_schema(sync_type="full_refresh"))
    schema_id = api.schema_by_name(source_id, "orders")["id"]
    job = jobs.claim(backend.store, schema_id, utcnow())
    assert job is not None
    answers: list[Any] = []

    def cancel_through_the_api(progress: JobProgress) -> None:
        if not answers:
            answers.append(api.post(f"{SCHEMAS}{schema_id}/cancel/"))

    warehouse = Warehouse(backend.home / "cancel-test.duckdb")
    try:
        engine = SyncEngine(backend.store, backend.vault, warehouse, Clock(), batch_rows=100)
        outcome = engine.run(job, progress=cancel_through_the_api)
    finally:
        warehouse.close()

    assert answers[0].status_code == 200 and answers[0].content == b""
    assert (outcome.status, outcome.error) == ("Failed", CANCELLED)
    schema = api.get(f"{SCHEMAS}{schema_id}/").json()
    assert (schema["status"], schema["latest_error"], schema["table"]) == ("Failed", CANCELLED, None)
    (run,) = api.get(f"{SOURCES}{source_id}/jobs/").json()
    assert (run["status"], run["latest_error"]) == ("Failed", CANCELLED)
    assert api.source(source_id)["status"] == "Failed"


def test_cancel_unsticks_a_schema_shown_running_without_a_run(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    source_id = pg_source(api, pg_with_tables(postgres_db))
    orders = api.schema_by_name(source_id, "orders")
    assert orders["status"] == "Running"  # requested at create, not started (no scheduler here)

    response = api.post(f"{SCHEMAS}{orders['id']}/cancel/")
    assert response.status_code == 200
    assert response.json() == {"detail": "No sync was running. The sync status has been updated."}
    assert api.get(f"{SCHEMAS}{orders['id']}/").json()["status"] == "Failed"  # no earlier run to show
    row = backend.store.query_one("SELECT next_sync_at FROM schemas WHERE id = ?", (orders["id"],))
    assert row is not None and row["next_sync_at"] is not None and row["next_sync_at"] > utcnow().isoformat()
    again = api.post(f"{SCHEMAS}{orders['id']}/cancel/")
    assert again.status_code == 400 and again.json() == {"detail": "No running sync to cancel."}


# --- 5. refresh_schemas ---------------------------------------------------------------------------


def test_a_reappearing_table_brings_its_schema_back(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    source_id = pg_source(api, pg, orders_schema(), {"name": "events"})
    events = api.schema_by_name(source_id, "events")
    update = {"sync_type": "full_refresh", "sync_frequency": "12hour", "sync_time_of_day": "03:00:00"}
    assert api.patch(f"{SCHEMAS}{events['id']}/", update).status_code == 200

    pg.execute("ALTER TABLE events RENAME TO events_gone")
    gone = api.post(f"{SOURCES}{source_id}/refresh_schemas/").json()
    assert gone == {"added": 1, "deleted": 1, "total_tables_seen": 2}
    assert "events" not in {schema["name"] for schema in api.source(source_id)["schemas"]}

    pg.execute("ALTER TABLE events_gone RENAME TO events")
    back = api.post(f"{SOURCES}{source_id}/refresh_schemas/").json()
    assert back == {"added": 1, "deleted": 1, "total_tables_seen": 2}
    restored = api.schema_by_name(source_id, "events")
    assert restored["id"] == events["id"], "the soft-deleted schema comes back, not a new one"
    assert (restored["sync_type"], restored["sync_frequency"], restored["sync_time_of_day"]) == (
        "full_refresh",
        "12hour",
        "03:00:00",
    )
    assert restored["should_sync"] is False


def test_refresh_schemas_of_an_unreachable_source(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    source_id = pg_source(api, pg)
    break_connection(backend, source_id, pg.config)
    assert_message(
        api.post(f"{SOURCES}{source_id}/refresh_schemas/"),
        "Could not connect to the source. Check the host, port, and network access.",
    )


# --- 6. validation PostHog does ---------------------------------------------------------------------


def test_xmin_only_on_postgres_tables_with_a_primary_key(
    api: Api, postgres_db: Database, mysql_db: Database
) -> None:
    pg_id = pg_source(api, pg_with_tables(postgres_db), orders_schema(), {"name": "events"})
    events = api.schema_by_name(pg_id, "events")  # no primary key
    assert_drf(
        api.patch(f"{SCHEMAS}{events['id']}/", {"sync_type": "xmin"}),
        "xmin replication requires a primary key on table 'events'. "
        "Provide primary_key_columns or refresh schema discovery to pick one up.",
    )
    # Issue 11: xmin passed these checks and then failed every run; now it runs (test_sync_correctness).
    orders = api.schema_by_name(pg_id, "orders")
    assert api.patch(f"{SCHEMAS}{orders['id']}/", {"sync_type": "xmin"}).json()["sync_type"] == "xmin"
    my_id = api.create_source(
        "MySQL", {**my_with_tables(mysql_db).config, "schemas": [{"name": "customers"}]}, prefix="my"
    )
    customers = api.schema_by_name(my_id, "customers")
    response = api.patch(f"{SCHEMAS}{customers['id']}/", {"sync_type": "xmin"})
    assert_drf(response, "xmin replication is only available for Postgres sources.")
    assert response.json()["code"] == "invalid_input"


def test_cursor_settings_need_a_type_that_uses_them(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    source_id = pg_source(api, pg_with_tables(postgres_db), orders_schema(sync_type="full_refresh"))
    orders = api.schema_by_name(source_id, "orders")
    url = f"{SCHEMAS}{orders['id']}/"
    assert_drf(
        api.patch(url, {"incremental_field": "updated_at", "primary_key_columns": ["id"]}),
        "incremental_field, primary_key_columns cannot be applied to a schema with sync type full_refresh "
        "on its own. Include sync_type in the same request to change the sync type.",
    )
    body = {
        "sync_type": "incremental",
        "incremental_field": "updated_at",
        "incremental_field_type": "timestamp",
    }
    assert api.patch(url, body).status_code == 200
    assert api.patch(url, {"incremental_field": "id", "incremental_field_type": "integer"}).status_code == 200


def test_a_first_primary_key_may_be_set_after_data_landed(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    incremental = {
        "sync_type": "incremental",
        "incremental_field": "seq",
        "incremental_field_type": "integer",
    }
    source_id = pg_source(api, pg, {"name": "events", "should_sync": True, **incremental})
    events = api.schema_by_name(source_id, "events")
    assert events["primary_key_columns"] is None
    land_table(backend, events["id"])
    url = f"{SCHEMAS}{events['id']}/"
    first = api.patch(url, {"primary_key_columns": ["seq"]})
    assert first.status_code == 200 and first.json()["primary_key_columns"] == ["seq"]
    assert_drf(
        api.patch(url, {"primary_key_columns": ["created_at"]}),
        "Primary key cannot be changed after data has been synced. Delete the synced data first, then change the primary key.",
    )


def test_secret_references_are_not_secrets(api: Api, postgres_db: Database) -> None:
    reference = {"secretRef": "wizard://postgres/password"}
    expected = (
        "Unresolved secret reference(s) for: password. These fields are still `{'secretRef': ...}` objects "
        "— PostHog cannot resolve them. Resolve the secret to its real value before calling (or collect "
        "credentials via data-warehouse-source-connect-link and pass the resulting credential_id instead)."
    )
    config = {**postgres_db.config, "password": reference}
    assert_message(api.post(SOURCES, {"source_type": "Postgres", "payload": config}), expected)
    assert_message(api.post(f"{SOURCES}setup/", {"source_type": "Postgres", "payload": config}), expected)
    assert_message(api.post(f"{SOURCES}database_schema/", {"source_type": "Postgres", **config}), expected)


# --- 7. answer shapes -------------------------------------------------------------------------------


def test_answer_shapes(api: Api, backend: EmbeddedBackend, postgres_db: Database) -> None:
    pg = pg_with_tables(postgres_db)
    pg.execute("CREATE INDEX events_created ON events (created_at)")
    discovered = api.post(f"{SOURCES}database_schema/", {"source_type": "Postgres", **pg.config}).json()
    events = next(table for table in discovered if table["table"] == "events")
    assert list(events)[7] == "xmin_available" and events["xmin_available"] is True
    assert (events["should_sync_default"], events["permission_error"], events["rls_warning"]) == (
        True,
        None,
        None,
    )
    indexed = {field["field"]: field["is_indexed"] for field in events["incremental_fields"]}
    assert indexed == {"seq": False, "created_at": True}

    source_id = pg_source(api, pg)
    orders = api.schema_by_name(source_id, "orders")
    land_table(backend, orders["id"], "postgres_orders")
    listed = api.get(SOURCES).json()["results"][0]
    table = next(schema["table"] for schema in listed["schemas"] if schema["name"] == "orders")
    assert list(table) == ["id", "name", "row_count"], "the source list leaves the columns out"
    retrieved = api.schema_by_name(source_id, "orders")["table"]
    assert retrieved["columns"] == [{"key": "id", "name": "id", "type": "INTEGER", "schema_valid": True}]
    summary = api.get(f"{SCHEMAS}{orders['id']}/").json()["source"]
    assert summary["access_method"] == "warehouse"


# --- 9. error texts and codes ----------------------------------------------------------------------


def test_posthogs_error_texts_and_codes(api: Api, backend: EmbeddedBackend, postgres_db: Database) -> None:
    pg = pg_with_tables(postgres_db)
    source_id = pg_source(api, pg)
    orders = api.schema_by_name(source_id, "orders")
    one_minute = api.patch(f"{SCHEMAS}{orders['id']}/", {"sync_frequency": "1min"})
    assert_drf(
        one_minute,
        "A 1-minute sync frequency is only available for CDC schemas. "
        "The fastest frequency for other sync types is 5 minutes.",
    )
    assert one_minute.json()["code"] == "invalid_input"
    access = api.patch(f"{SOURCES}{source_id}/", {"access_method": "direct"})
    assert_drf(access, "Access method cannot be changed. Create a new source instead.")
    assert access.json()["code"] == "invalid_input"

    set_schema(backend, orders["id"], status="Completed")
    break_connection(backend, source_id, pg.config)
    unreachable = api.post(f"{SOURCES}{source_id}/check_cdc_prerequisites_for_source/", {})
    assert message(unreachable).startswith("Could not connect to source to check prerequisites: ")
    unreachable = api.post(
        f"{SOURCES}check_cdc_prerequisites/", {"source_type": "Postgres", **pg.config, "port": 1}
    )
    assert message(unreachable).startswith("Could not connect to Postgres to check prerequisites: ")


# --- 4. direct_query_enabled and direct sources -----------------------------------------------------


def test_direct_query_enabled_is_set_on_create_and_patch(api: Api, postgres_db: Database) -> None:
    pg = pg_with_tables(postgres_db)
    synced = pg_source(api, pg)
    assert api.source(synced)["direct_query_enabled"] is False
    assert api.get(f"{SOURCES}connections/").json() == []
    turned_on = api.patch(f"{SOURCES}{synced}/", {"direct_query_enabled": True})
    assert turned_on.status_code == 200 and turned_on.json()["direct_query_enabled"] is True
    assert api.get(f"{SOURCES}connections/").json() == [{"id": synced, "prefix": None, "engine": "postgres"}]

    created = api.create_source(
        "Postgres", {**pg.config, "schemas": [orders_schema()]}, prefix="both", direct_query_enabled=True
    )
    assert api.source(created)["direct_query_enabled"] is True
    assert_drf(
        api.patch(f"{SOURCES}{created}/", {"direct_query_enabled": "maybe"}),
        "Must be a valid boolean.",
        attr="direct_query_enabled",
    )


def test_a_direct_sources_enabled_tables_are_exposed_live(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    pg = pg_with_tables(postgres_db)
    source_id = api.create_source(
        "Postgres",
        {**pg.config, "schemas": [{"name": "orders", "should_sync": True}, {"name": "events"}]},
        access_method="direct",
        prefix="live",
    )
    orders = api.schema_by_name(source_id, "orders")
    assert orders["table"]["name"] == "orders" and orders["table"]["row_count"] is None
    assert [column["name"] for column in orders["table"]["columns"]] == ["id", "amount", "note", "updated_at"]
    events = api.schema_by_name(source_id, "events")
    assert events["table"] is None

    enabled = api.patch(f"{SCHEMAS}{events['id']}/", {"should_sync": True}).json()
    assert enabled["table"]["name"] == "events"
    assert api.delete(f"{SCHEMAS}{orders['id']}/delete_data/").status_code == 200
    orders = api.schema_by_name(source_id, "orders")
    assert (orders["should_sync"], orders["table"]) == (False, None), "delete_data disables a direct table"


def test_a_direct_source_with_a_blank_schema_lists_every_schema(api: Api, postgres_db: Database) -> None:
    pg = pg_with_tables(postgres_db)
    pg.execute("CREATE SCHEMA billing", "CREATE TABLE billing.invoices (id int PRIMARY KEY)")
    config = {**pg.config, "schema": ""}
    source_id = api.create_source(
        "Postgres",
        {**config, "schemas": [{"name": "billing.invoices", "should_sync": True}]},
        access_method="direct",
        prefix="everything",
    )
    names = {schema["name"] for schema in api.source(source_id)["schemas"]}
    assert {"public.orders", "public.events", "billing.invoices"} <= names

    changed = api.patch(
        f"{SOURCES}{source_id}/", {"job_inputs": {"schema": "billing", "password": pg.config["password"]}}
    )
    assert changed.status_code == 200, changed.text
    live = {schema["name"] for schema in changed.json()["schemas"]}
    assert "invoices" in live and "public.orders" not in live, "changing the schema refreshed the list"


def test_posthogs_text_booleans_are_read_as_booleans(api: Api, postgres_db: Database) -> None:
    """PostHog answers job_inputs booleans as "True"/"False"; a client echoing them must not turn CDC on."""
    pg = pg_with_tables(postgres_db)
    source_id = api.create_source(
        "Postgres", {**pg.config, "cdc_enabled": "False", "schemas": [orders_schema()]}
    )
    job_inputs = api.source(source_id)["job_inputs"]
    assert job_inputs.get("cdc_enabled", False) is False
    orders = api.schema_by_name(source_id, "orders")
    refused = api.patch(f"{SCHEMAS}{orders['id']}/", {"sync_type": "cdc"})
    assert refused.status_code == 400 and "CDC must be enabled on the source" in refused.json()["detail"]
