"""setup: one call from a stored credential (or inline keys) to a source with every table defaulted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CANARY_PASSWORD, Database
from tests.embedded.api_support import (
    SOURCES,
    Api,
    api,
    assert_drf,
    assert_message,
    backend,
    my_with_tables,
    shared_pg,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors.base import ColumnInfo, IncrementalCandidate, TableInfo
from warehouse_mcp.embedded.domain.source_setup import cursor_field, default_schemas

__all__ = ["api", "backend", "shared_pg"]  # fixtures

SETUP = f"{SOURCES}setup/"


def store_credential(api: Api, source_type: str, payload: dict[str, Any]) -> str:
    response = api.post(f"{SOURCES}store_credentials/", {"source_type": source_type, "payload": payload})
    assert response.status_code == 201, response.text
    return str(response.json()["credential_id"])


def test_setup_from_a_stored_credential(api: Api, backend: EmbeddedBackend, shared_pg: Database) -> None:
    credential_id = store_credential(api, "Postgres", shared_pg.config)
    response = api.post(
        SETUP,
        {
            "source_type": "Postgres",
            # Stored values win over inline keys: this wrong password is ignored.
            "payload": {"credential_id": credential_id, "password": "inline-and-wrong"},
            "prefix": "app",
            "description": "from the connect page",
        },
    )
    assert response.status_code == 201, response.text
    source = response.json()
    assert source["id"] and source["created_via"] == "mcp" and source["prefix"] == "app"
    assert source["description"] == "from the connect page"
    assert "webhook" not in source, "Postgres takes no webhooks"

    schemas = {schema["name"]: schema for schema in source["schemas"]}
    assert schemas["orders"]["should_sync"] is True and schemas["orders"]["sync_type"] == "incremental"
    assert schemas["orders"]["incremental_field"] == "updated_at"
    assert schemas["orders"]["primary_key_columns"] == ["id"]
    # No primary key to merge on: the cursor column still limits each run, rows are appended.
    assert schemas["events"]["should_sync"] is True and schemas["events"]["sync_type"] == "append"
    assert schemas["events"]["incremental_field"] == "created_at"
    assert all(schema["sync_frequency"] == "6hour" for schema in schemas.values())

    assert api.get(f"{SOURCES}stored_credentials/").json() == [], "the credential was single-use"
    rows = backend.store.query("SELECT next_sync_at FROM schemas WHERE source_id = ?", (source["id"],))
    assert all(row["next_sync_at"] is not None for row in rows), "every enabled table is asked to sync"
    again = api.post(
        SETUP, {"source_type": "Postgres", "payload": {"credential_id": credential_id}, "prefix": "b"}
    )
    assert_message(again, f"Stored credential '{credential_id}' not found or expired")


def test_setup_with_inline_keys_on_mysql(api: Api, mysql_db: Database) -> None:
    my_with_tables(mysql_db)
    response = api.post(SETUP, {"source_type": "MySQL", "payload": mysql_db.config})
    assert response.status_code == 201, response.text
    schemas = {schema["name"]: schema for schema in response.json()["schemas"]}
    assert schemas["customers"]["sync_type"] == "incremental"
    assert schemas["customers"]["incremental_field"] == "modified_at"
    assert schemas["logs"]["sync_type"] == "full_refresh" and schemas["logs"]["incremental_field"] is None
    assert schemas["logs"]["primary_key_columns"] is None


def test_a_failed_setup_keeps_the_credential(api: Api, shared_pg: Database) -> None:
    api.post(SETUP, {"source_type": "Postgres", "payload": shared_pg.config})
    credential_id = store_credential(api, "Postgres", shared_pg.config)
    response = api.post(SETUP, {"source_type": "Postgres", "payload": {"credential_id": credential_id}})
    assert_message(response, "Source type already exists. Prefix is required")
    listed = api.get(f"{SOURCES}stored_credentials/").json()
    assert [item["credential_id"] for item in listed] == [credential_id]
    retry = api.post(
        SETUP, {"source_type": "Postgres", "payload": {"credential_id": credential_id}, "prefix": "two"}
    )
    assert retry.status_code == 201


def test_a_credential_of_another_type_is_refused(api: Api, mysql_db: Database) -> None:
    credential_id = store_credential(api, "MySQL", mysql_db.config)
    response = api.post(SETUP, {"source_type": "Postgres", "payload": {"credential_id": credential_id}})
    assert_message(response, f"Stored credential '{credential_id}' is for 'MySQL', not 'Postgres'")


def test_an_unknown_credential_is_refused(api: Api) -> None:
    response = api.post(SETUP, {"source_type": "Postgres", "payload": {"credential_id": "nope"}})
    assert_message(response, "Stored credential 'nope' not found or expired")


def test_a_source_without_tables_is_refused(
    api: Api, backend: EmbeddedBackend, postgres_db: Database
) -> None:
    response = api.post(SETUP, {"source_type": "Postgres", "payload": postgres_db.config})
    assert_message(response, "No tables found for this source. Check the credentials and permissions.")
    assert backend.store.query("SELECT id FROM sources") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"payload": {}}, ("This field is required.", "source_type")),
        (
            {"source_type": "Postgres", "payload": []},
            ('Expected a dictionary of items but got type "list".', "payload"),
        ),
    ],
)
def test_setup_field_errors(api: Api, body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert_drf(api.post(SETUP, body), expected[0], attr=expected[1])


def test_setup_checks_config_and_credentials(api: Api, shared_pg: Database) -> None:
    missing = {key: value for key, value in shared_pg.config.items() if key != "user"}
    assert_message(
        api.post(SETUP, {"source_type": "Postgres", "payload": missing}),
        "Invalid source config: Required field 'user' is missing",
    )
    wrong = api.post(
        SETUP, {"source_type": "Postgres", "payload": {**shared_pg.config, "password": "x" + CANARY_PASSWORD}}
    )
    assert wrong.status_code == 400 and wrong.json()["message"].startswith("Invalid credentials")
    unsupported = api.post(SETUP, {"source_type": "Salesforce", "payload": {}})
    assert unsupported.status_code == 400 and "POSTHOG_PERSONAL_API_KEY" in unsupported.json()["message"]


# --- the defaults themselves ----------------------------------------------------------------------


def table(name: str, *candidates: str, **options: Any) -> TableInfo:
    return TableInfo(
        name=name,
        columns=[ColumnInfo("id", "integer", False, "INTEGER")],
        incremental_fields=[IncrementalCandidate(field, "timestamp", True) for field in candidates],
        **options,
    )


@pytest.mark.parametrize(
    ("candidates", "chosen"),
    [
        (("created", "UpdatedAt", "id"), "UpdatedAt"),
        (("created_at", "modified_at"), "modified_at"),
        (("last_modified", "created"), "last_modified"),
        (("seq", "other"), "seq"),
        ((), None),
    ],
)
def test_cursor_field_preference(candidates: tuple[str, ...], chosen: str | None) -> None:
    found = cursor_field(table("t", *candidates).incremental_fields)
    assert (found.field if found else None) == chosen


def test_default_schemas() -> None:
    tables = [
        table("a", "updated_at", primary_keys=["id"]),
        table("b", "created", supports_incremental=False, primary_keys=["id"]),
        table("b2", "created"),
        table("c", "created", supports_incremental=False, supports_append=False),
        table("d"),
        table("e", "updated_at", webhook_only=True, supports_webhooks=True),
    ]
    assert default_schemas(tables) == [
        {
            "name": "a",
            "should_sync": True,
            "sync_type": "incremental",
            "incremental_field": "updated_at",
            "incremental_field_type": "timestamp",
            "primary_key_columns": ["id"],
        },
        {
            "name": "b",
            "should_sync": True,
            "sync_type": "append",
            "incremental_field": "created",
            "incremental_field_type": "timestamp",
            "primary_key_columns": ["id"],
        },
        {
            "name": "b2",
            "should_sync": True,
            "sync_type": "append",
            "incremental_field": "created",
            "incremental_field_type": "timestamp",
        },
        {"name": "c", "should_sync": True, "sync_type": "full_refresh"},
        {"name": "d", "should_sync": True, "sync_type": "full_refresh"},
        {"name": "e", "should_sync": False},
    ]
