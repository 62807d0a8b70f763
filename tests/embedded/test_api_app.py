"""The embedded app as a whole: routing of all 34 operations, both path families, auth, error shapes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.embedded.api_support import (
    SCHEMAS,
    SOURCES,
    Api,
    api,
    assert_drf,
    backend,
    orders_schema,
    pg_with_tables,
)
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.http.app import ENDPOINTS

__all__ = ["api", "backend"]  # fixtures

# (method, path after the project) of every documented operation (docs/operations.md), with an id
# that does not exist: each must reach its handler (which answers 404 for the id), never 405.
SOURCE_ID = "00000000-0000-4000-8000-000000000000"
OPERATIONS = [
    ("GET", SOURCES),
    ("POST", SOURCES),
    ("GET", f"{SOURCES}{SOURCE_ID}/"),
    ("PATCH", f"{SOURCES}{SOURCE_ID}/"),
    ("DELETE", f"{SOURCES}{SOURCE_ID}/"),
    ("PATCH", f"{SOURCES}{SOURCE_ID}/bulk_update_schemas/"),
    ("GET", f"{SOURCES}{SOURCE_ID}/cdc_status/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/check_cdc_prerequisites_for_source/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/create_webhook/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/delete_webhook/"),
    ("GET", f"{SOURCES}{SOURCE_ID}/jobs/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/refresh_schemas/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/reload/"),
    ("PATCH", f"{SOURCES}{SOURCE_ID}/revenue_analytics_config/"),
    ("POST", f"{SOURCES}{SOURCE_ID}/update_webhook_inputs/"),
    ("GET", f"{SOURCES}{SOURCE_ID}/webhook_info/"),
    ("POST", f"{SOURCES}check_cdc_prerequisites/"),
    ("GET", f"{SOURCES}connect_link/"),
    ("GET", f"{SOURCES}connections/"),
    ("POST", f"{SOURCES}database_schema/"),
    ("POST", f"{SOURCES}setup/"),
    ("POST", f"{SOURCES}source_prefix/"),
    ("POST", f"{SOURCES}store_credentials/"),
    ("GET", f"{SOURCES}stored_credentials/"),
    ("GET", f"{SOURCES}wizard/"),
    ("GET", SCHEMAS),
    ("GET", f"{SCHEMAS}{SOURCE_ID}/"),
    ("PATCH", f"{SCHEMAS}{SOURCE_ID}/"),
    ("DELETE", f"{SCHEMAS}{SOURCE_ID}/"),
    ("POST", f"{SCHEMAS}{SOURCE_ID}/cancel/"),
    ("DELETE", f"{SCHEMAS}{SOURCE_ID}/delete_data/"),
    ("POST", f"{SCHEMAS}{SOURCE_ID}/incremental_fields/"),
    ("POST", f"{SCHEMAS}{SOURCE_ID}/reload/"),
    ("POST", f"{SCHEMAS}{SOURCE_ID}/resync/"),
    ("GET", "warehouse/tables/"),
    ("POST", "warehouse/query/"),
]


def test_every_documented_operation_is_routed() -> None:
    assert len(OPERATIONS) == 36
    served = {(method, endpoint.name) for endpoint in ENDPOINTS for method in endpoint.methods}
    assert len(served) == 36


@pytest.mark.parametrize("family", ["projects", "environments"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_operation_reaches_its_handler_in_both_families(
    backend: EmbeddedBackend, family: str, method: str, path: str
) -> None:
    client = Api(backend, family)
    response = client.request(method, path, json={})
    assert response.status_code != 405, response.text
    if SOURCE_ID in path:
        assert_drf(response, "Not found.", status=404)
        assert response.json()["type"] == "invalid_request"
    else:
        assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    "path", ["external_data_sources", "external_data_sources/", "external_data_sources/wizard"]
)
def test_trailing_slash_is_optional(api: Api, path: str) -> None:
    assert api.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/1/nothing_here/",
        "/api/projects/abc/external_data_sources/",
        "/api/teams/1/external_data_sources/",
        "/api/projects/1/external_data_sources/x/y/z/",
        "/not-the-api/",
    ],
)
def test_unknown_routes_are_404_in_drf_shape(api: Api, path: str) -> None:
    response = api.get(path)
    assert_drf(response, "Not found.", status=404)
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", f"{SOURCES}{SOURCE_ID}/"),
        ("POST", f"{SOURCES}wizard/"),
        ("GET", f"{SCHEMAS}{SOURCE_ID}/cancel/"),
    ],
)
def test_wrong_method_is_405_in_drf_shape(api: Api, method: str, path: str) -> None:
    response = api.request(method, path)
    assert_drf(response, f'Method "{method}" not allowed.', status=405)
    assert response.json()["type"] == "invalid_request"


def test_current_project_is_project_one_and_projects_are_separate(api: Api, backend: EmbeddedBackend) -> None:
    with backend.store.transaction() as db:
        db.execute(
            "INSERT INTO sources (id, team_id, source_type, created_at, updated_at) "
            "VALUES (?, 1, 'Postgres', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
            (SOURCE_ID,),
        )
    assert Api(backend, "environments", "@current").get(f"{SOURCES}{SOURCE_ID}/").status_code == 200
    assert Api(backend, "projects", "2").get(f"{SOURCES}{SOURCE_ID}/").status_code == 404
    assert Api(backend, "projects", "2").get(SOURCES).json()["count"] == 0


def test_head_answers_like_get_and_get_ignores_a_body(api: Api) -> None:
    assert api.request("HEAD", SOURCES).status_code == 200
    assert api.request("GET", SOURCES, content=b"{not json").status_code == 200


def test_ids_are_read_in_any_uuid_spelling(api: Api, backend: EmbeddedBackend) -> None:
    with backend.store.transaction() as db:
        db.execute(
            "INSERT INTO sources (id, team_id, source_type, created_at, updated_at) "
            "VALUES (?, 1, 'Postgres', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
            (SOURCE_ID,),
        )
    assert api.get(f"{SOURCES}{SOURCE_ID.upper()}/").json()["id"] == SOURCE_ID
    assert api.get(f"{SOURCES}{SOURCE_ID.replace('-', '')}/").status_code == 200


def test_malformed_json_is_a_parse_error(api: Api) -> None:
    response = api.request(
        "POST", SOURCES, content=b'{"source_type": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "invalid_request" and body["code"] == "parse_error"
    assert body["detail"].startswith("JSON parse error - ")


def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    response = api.post(SOURCES, ["not", "an", "object"])
    assert_drf(response, "Invalid data. Expected a dictionary, but got list.")


def test_a_warehouse_query_without_sql_is_refused_in_drf_shape(api: Api) -> None:
    for body in ({}, {"sql": "  "}, {"sql": 5}):
        response = api.post("warehouse/query/", body)
        assert_drf(response, "Send the SQL to run as `sql` (one SELECT statement).", attr="sql")
        assert response.json()["code"] == "required"


class TestAuth:
    @pytest.fixture
    def secured(self, home: Path) -> EmbeddedBackend:
        return EmbeddedBackend(home, api_token="wmcp_token_123", run_scheduler=False)

    def test_no_token_is_not_authenticated(self, secured: EmbeddedBackend) -> None:
        response = Api(secured).get(SOURCES)
        assert_drf(response, "Authentication credentials were not provided.", status=401)
        assert response.json()["type"] == "authentication_error"

    @pytest.mark.parametrize("header", ["Bearer wrong", "Bearer wmcp_token_1234", "Bearer wmcp_token_12"])
    def test_a_wrong_token_is_refused(self, secured: EmbeddedBackend, header: str) -> None:
        response = Api(secured).get(SOURCES, headers={"Authorization": header})
        assert_drf(response, "Invalid personal API key.", status=401)
        assert response.json()["type"] == "authentication_error"

    def test_another_scheme_counts_as_no_credentials(self, secured: EmbeddedBackend) -> None:
        response = Api(secured).get(SOURCES, headers={"Authorization": "Basic d21jcDp4"})
        assert_drf(response, "Authentication credentials were not provided.", status=401)

    def test_the_token_opens_every_family(self, secured: EmbeddedBackend) -> None:
        for family in ("projects", "environments"):
            response = Api(secured, family).get(SOURCES, headers={"Authorization": "Bearer wmcp_token_123"})
            assert response.status_code == 200

    def test_auth_is_checked_before_the_method(self, secured: EmbeddedBackend) -> None:
        assert Api(secured).request("PUT", SOURCES).status_code == 401

    def test_without_a_token_configured_no_auth_is_needed(self, api: Api) -> None:
        assert api.get(SOURCES).status_code == 200


def test_unexpected_errors_are_a_generic_500_and_logged(
    api: Api, backend: EmbeddedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    # A row no handler can read (a corrupt JSON column) stands in for any unforeseen failure.
    with backend.store.transaction() as db:
        db.execute(
            "INSERT INTO sources (id, team_id, source_type, connection_metadata, created_at, updated_at) "
            "VALUES (?, 1, 'Postgres', '{broken json secret-in-error', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
            (SOURCE_ID,),
        )
    with caplog.at_level(logging.ERROR, logger="warehouse_mcp.embedded.http.app"):
        response = api.get(f"{SOURCES}{SOURCE_ID}/")
    assert response.status_code == 500
    assert response.json() == {
        "type": "server_error",
        "code": "error",
        "detail": "A server error occurred.",
        "attr": None,
    }
    assert "secret-in-error" not in response.text
    assert any(record.exc_info for record in caplog.records), "the traceback is logged"


def test_a_new_backend_on_the_same_home_sees_the_same_sources(home: Path, postgres_db: Database) -> None:
    pg_with_tables(postgres_db)
    first = EmbeddedBackend(home, run_scheduler=False)
    source_id = Api(first).create_source(
        "Postgres", {**postgres_db.config, "schemas": [orders_schema()]}, prefix="pg"
    )
    first.close()

    again = Api(EmbeddedBackend(home, run_scheduler=False))
    source = again.source(source_id)
    assert source["prefix"] == "pg"
    assert [schema["name"] for schema in source["schemas"]] == ["events", "orders"]
    # The secret survived the restart too: a live re-check with the stored password still passes.
    assert again.post(f"{SCHEMAS}{source['schemas'][1]['id']}/incremental_fields/").status_code == 200
    again.assert_no_secret_leaked()


def test_constructing_the_backend_imports_no_driver(home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from warehouse_mcp.embedded.backend import EmbeddedBackend; "
        f"EmbeddedBackend(Path({str(home)!r}), run_scheduler=False); "
        "print(sorted(m for m in ('psycopg', 'pymysql', 'duckdb', 'pyarrow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_home_directory_is_created(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    EmbeddedBackend(home, run_scheduler=False)
    assert (home / "metadata.sqlite3").exists()
