"""CDC readiness and status through the API, against the real Postgres (wal_level=logical)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Database
from tests.embedded.api_support import (
    SOURCES,
    Api,
    api,
    assert_message,
    backend,
    my_with_tables,
    orders_schema,
    pg_with_tables,
    shared_pg,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend

__all__ = ["api", "backend", "shared_pg"]  # fixtures

CHECK = f"{SOURCES}check_cdc_prerequisites/"


def check(api: Api, db: Database, **extra: Any) -> Any:
    return api.post(CHECK, {"source_type": "Postgres", **db.config, **extra})


def test_a_ready_database_is_valid(api: Api, shared_pg: Database) -> None:
    response = check(api, shared_pg, tables=["orders"])
    assert response.status_code == 200, response.text
    assert response.json() == {"valid": True, "errors": []}


def test_every_failed_check_is_listed(api: Api, shared_pg: Database) -> None:
    response = check(api, shared_pg, tables=["events", "public.ghost"])
    assert response.json() == {
        "valid": False,
        "errors": [
            "Table 'public.events' has no primary key. CDC requires a primary key on each table.",
            "Table 'public.ghost' does not exist.",
        ],
    }


def test_self_managed_mode_needs_names(api: Api, shared_pg: Database) -> None:
    body = check(api, shared_pg, tables=["orders"], cdc_management_mode="self_managed").json()
    assert body["valid"] is False
    assert body["errors"] == [
        "Replication slot name is required for self-managed mode.",
        "Publication name is required for self-managed mode.",
    ]


@pytest.fixture
def plain_role(postgres_db: Database) -> Iterator[str]:
    role = f"wmcp_api_plain_{uuid.uuid4().hex[:8]}"
    postgres_db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOREPLICATION")
    try:
        yield role
    finally:
        postgres_db.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_a_role_without_rights_is_told_what_to_grant(
    api: Api, postgres_db: Database, plain_role: str
) -> None:
    pg_with_tables(postgres_db)
    response = api.post(
        CHECK, {"source_type": "Postgres", **postgres_db.config, "user": plain_role, "tables": ["orders"]}
    )
    errors = response.json()["errors"]
    assert "No SELECT permission on table 'public.orders'." in errors
    assert any("ALTER USER" in error and "WITH REPLICATION" in error for error in errors)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"source_type": "MySQL"}, "CDC prerequisite checks are only supported for Postgres."),
        ({}, "CDC prerequisite checks are only supported for Postgres."),
        (
            {"source_type": "Postgres", "host": "127.0.0.1"},
            "Invalid source config: Required field 'port' is missing",
        ),
    ],
)
def test_check_refusals(api: Api, body: dict[str, Any], text: str) -> None:
    assert_message(api.post(CHECK, body), text)


def test_an_unknown_management_mode_is_refused(api: Api, shared_pg: Database) -> None:
    assert_message(
        check(api, shared_pg, cdc_management_mode="sometimes"),
        "cdc_management_mode must be 'posthog' or 'self_managed'.",
    )


def test_an_unreachable_database(api: Api, shared_pg: Database) -> None:
    response = check(api, shared_pg, port=1, tables=["orders"])
    assert response.status_code == 400
    assert response.json()["message"].startswith("Could not connect to Postgres to check prerequisites: ")


# --- for an existing source -----------------------------------------------------------------------


def test_prerequisites_for_a_source_use_its_stored_credentials(api: Api, shared_pg: Database) -> None:
    source_id = api.create_source("Postgres", {**shared_pg.config, "schemas": [orders_schema()]})
    response = api.post(f"{SOURCES}{source_id}/check_cdc_prerequisites_for_source/", {})
    assert response.json() == {"valid": True, "errors": []}
    assert_message(
        api.post(f"{SOURCES}{source_id}/check_cdc_prerequisites_for_source/", {"cdc_management_mode": "x"}),
        "cdc_management_mode must be 'posthog' or 'self_managed'.",
    )


def test_cdc_is_for_postgres_sources_only(api: Api, mysql_db: Database) -> None:
    my_with_tables(mysql_db)
    source_id = api.create_source("MySQL", {**mysql_db.config, "schemas": [{"name": "logs"}]})
    text = "CDC is not supported for source type: MySQL"
    assert_message(api.post(f"{SOURCES}{source_id}/check_cdc_prerequisites_for_source/", {}), text)
    assert_message(api.get(f"{SOURCES}{source_id}/cdc_status/"), text)


def test_status_of_a_source_without_cdc(api: Api, shared_pg: Database) -> None:
    source_id = api.create_source("Postgres", {**shared_pg.config, "schemas": [orders_schema()]})
    assert api.get(f"{SOURCES}{source_id}/cdc_status/").json() == {"enabled": False}


def test_status_of_a_cdc_source(api: Api, backend: EmbeddedBackend, postgres_db: Database) -> None:
    pg_with_tables(postgres_db)
    publication = f"wmcp_pub_{uuid.uuid4().hex[:8]}"
    payload = {
        **postgres_db.config,
        "cdc_enabled": True,
        "cdc_management_mode": "self_managed",
        "cdc_slot_name": f"wmcp_slot_{uuid.uuid4().hex[:8]}",
        "cdc_publication_name": publication,
        "schemas": [{"name": "orders", "should_sync": True, "sync_type": "cdc"}],
    }
    source_id = api.create_source("Postgres", payload)
    postgres_db.execute(f"CREATE PUBLICATION {publication} FOR TABLE orders")
    status = api.get(f"{SOURCES}{source_id}/cdc_status/").json()
    assert status == {
        "enabled": True,
        "management_mode": "self_managed",
        "slot_name": payload["cdc_slot_name"],
        "publication_name": publication,
        "lag_warning_threshold_mb": 1024,
        "lag_critical_threshold_mb": 10240,
        "slot_exists": False,
        "publication_exists": True,
        "lag_bytes": None,
        "published_tables": ["public.orders"],
        "lag_status": None,
    }

    with backend.store.transaction() as db:
        db.execute(
            "UPDATE sources SET job_inputs = json_set(job_inputs, '$.port', 1) WHERE id = ?", (source_id,)
        )
    unreachable = api.get(f"{SOURCES}{source_id}/cdc_status/")
    assert unreachable.status_code == 400
    assert unreachable.json()["message"].startswith("Could not connect to source to read CDC status: ")
