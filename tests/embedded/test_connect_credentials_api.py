"""connect_link, store_credentials and stored_credentials over HTTP, and the stored-credential contract setup uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CANARY_PASSWORD, Database
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.domain import credentials
from warehouse_mcp.embedded.domain.errors import DomainError
from warehouse_mcp.embedded.http.errors import ErrorAnswer, domain_answer

SOURCES = "/api/projects/@current/external_data_sources"


@pytest.fixture
def backend(home: Path) -> Iterator[EmbeddedBackend]:
    embedded = EmbeddedBackend(home, run_scheduler=False)
    try:
        yield embedded
    finally:
        embedded.close()


@pytest.fixture
def api(backend: EmbeddedBackend) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.connect_base_url(), timeout=30) as http:
        yield http


def stash(backend: EmbeddedBackend, source_type: str, payload: dict[str, Any], team_id: int = 1) -> str:
    """A stored credential without the live check (listing and taking do not care how it got there)."""
    with backend.store.transaction() as db:
        return str(
            credentials.insert_credential(db, backend.vault, team_id, source_type, payload)["credential_id"]
        )


def expire(backend: EmbeddedBackend, credential_id: str) -> None:
    with backend.store.transaction() as db:
        db.execute(
            "UPDATE stored_credentials SET expires_at = '2020-01-02T00:00:00Z' WHERE id = ?", (credential_id,)
        )


def test_connect_link_answers_a_fresh_one_time_link(backend: EmbeddedBackend, api: httpx.Client) -> None:
    first = api.get(f"{SOURCES}/connect_link/", params={"source_type": "Postgres"})
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"source_type", "auth_method", "connect_url", "integration_field", "instructions"}
    assert body["source_type"] == "Postgres"
    assert body["auth_method"] == "credentials"
    assert body["integration_field"] == "credential_id"
    assert body["connect_url"].startswith(f"{backend.connect_base_url()}/connect/")
    assert "data-warehouse-source-setup" in body["instructions"] and "30 minutes" in body["instructions"]
    second = api.get(f"{SOURCES}/connect_link/", params={"source_type": "Postgres"}).json()
    assert second["connect_url"] != body["connect_url"]

    token = body["connect_url"].rsplit("/", 1)[1]
    rows = backend.store.query("SELECT token_hash, created_at, expires_at FROM connect_tokens")
    assert len(rows) == 2 and all(token not in row["token_hash"] for row in rows)
    lifetime = datetime.fromisoformat(rows[0]["expires_at"]) - datetime.fromisoformat(rows[0]["created_at"])
    assert lifetime == credentials.CONNECT_LINK_TTL == timedelta(minutes=30)
    assert api.get(body["connect_url"]).status_code == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "Missing required parameter: source_type"),
        ({"source_type": ""}, "Missing required parameter: source_type"),
        ({"source_type": "Oracle"}, "Unknown source_type 'Oracle'"),
    ],
)
def test_connect_link_refuses_a_missing_or_unknown_type(
    api: httpx.Client, query: dict[str, str], message: str
) -> None:
    answer = api.get(f"{SOURCES}/connect_link/", params=query)
    assert answer.status_code == 400
    assert answer.json() == {"message": message}


def test_connect_link_refuses_a_type_only_posthog_runs(api: httpx.Client) -> None:
    answer = api.get(f"{SOURCES}/connect_link/", params={"source_type": "Hubspot"})
    assert answer.status_code == 400
    with pytest.raises(registry.UnsupportedSource) as unsupported:
        registry.connector_for("Hubspot")
    assert answer.json() == {"message": str(unsupported.value)}


def test_auth_method_is_oauth_only_when_oauth_is_the_only_way_in() -> None:
    assert credentials.auth_method("Hubspot") == "oauth"
    assert credentials.auth_method("Stripe") == "credentials"  # API key or OAuth
    assert credentials.auth_method("Postgres") == "credentials"


@pytest.mark.postgres
def test_store_credentials_checks_the_live_source_then_keeps_it_24_hours(
    backend: EmbeddedBackend, api: httpx.Client, postgres_db: Database
) -> None:
    wrong = {**postgres_db.config, "password": "wrong-password-e02"}
    refused = api.post(f"{SOURCES}/store_credentials/", json={"source_type": "Postgres", "payload": wrong})
    assert refused.status_code == 400
    assert "wrong-password-e02" not in refused.text
    assert "message" in refused.json()

    missing = {key: value for key, value in postgres_db.config.items() if key != "user"}
    incomplete = api.post(
        f"{SOURCES}/store_credentials/", json={"source_type": "Postgres", "payload": missing}
    )
    assert incomplete.status_code == 400
    assert incomplete.json() == {"message": "Invalid source config: Required field 'user' is missing"}

    payload = {**postgres_db.config, "host": f"  {postgres_db.config['host']} ", "schemas": [{"name": "x"}]}
    stored = api.post(f"{SOURCES}/store_credentials/", json={"source_type": "Postgres", "payload": payload})
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert set(body) == {"credential_id", "source_type", "created_at", "expires_at"}
    assert body["source_type"] == "Postgres"
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(hours=24)
    assert CANARY_PASSWORD not in stored.text

    taken = credentials.take_stored_credential(
        backend.store, backend.vault, 1, body["credential_id"], "Postgres"
    )
    assert taken["password"] == CANARY_PASSWORD
    assert taken["host"] == postgres_db.config["host"]  # stripped
    assert "schemas" not in taken  # only the form's fields are kept
    row = backend.store.query_one("SELECT payload_secret FROM stored_credentials")
    assert row is not None and CANARY_PASSWORD.encode() not in bytes(row["payload_secret"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"payload": {}}, "Missing required parameter: source_type"),
        ({"source_type": "Oracle", "payload": {}}, "Unknown source_type 'Oracle'"),
        ({"source_type": "Postgres", "payload": "host=x"}, "'payload' must be an object"),
    ],
)
def test_store_credentials_refuses_bad_requests(
    api: httpx.Client, body: dict[str, Any], message: str
) -> None:
    answer = api.post(f"{SOURCES}/store_credentials/", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(message)


def test_stored_credentials_lists_unexpired_metadata_newest_first(
    backend: EmbeddedBackend, api: httpx.Client
) -> None:
    older = stash(backend, "Postgres", {"host": "a", "password": CANARY_PASSWORD})
    mysql = stash(backend, "MySQL", {"host": "b", "password": CANARY_PASSWORD})
    newer = stash(backend, "Postgres", {"host": "c", "password": CANARY_PASSWORD})
    gone = stash(backend, "Postgres", {"host": "d", "password": CANARY_PASSWORD})
    expire(backend, gone)
    stash(backend, "Postgres", {"host": "e", "password": CANARY_PASSWORD}, team_id=2)

    everything = api.get(f"{SOURCES}/stored_credentials/")
    assert everything.status_code == 200
    assert [item["credential_id"] for item in everything.json()] == [newer, mysql, older]
    assert CANARY_PASSWORD not in everything.text
    for item in everything.json():
        assert set(item) == {"credential_id", "source_type", "created_at", "expires_at"}

    postgres = api.get(f"{SOURCES}/stored_credentials/", params={"source_type": "Postgres"}).json()
    assert [item["credential_id"] for item in postgres] == [newer, older]
    searched = api.get(f"{SOURCES}/stored_credentials/", params={"search": "mysq"}).json()
    assert [item["credential_id"] for item in searched] == [mysql]
    other_team = api.get("/api/environments/2/external_data_sources/stored_credentials/").json()
    assert len(other_team) == 1


def test_take_stored_credential_explains_what_is_wrong(backend: EmbeddedBackend) -> None:
    credential = stash(backend, "Postgres", {"host": "a", "password": CANARY_PASSWORD})
    store, vault = backend.store, backend.vault

    def refusal(team_id: int, credential_id: str, source_type: str) -> ErrorAnswer:
        with pytest.raises(DomainError) as refused:
            credentials.take_stored_credential(store, vault, team_id, credential_id, source_type)
        answer = domain_answer(refused.value)
        assert answer.status == 400
        return answer

    assert refusal(1, credential, "MySQL").body == {
        "message": f"Stored credential '{credential}' is for 'Postgres', not 'MySQL'"
    }
    assert refusal(2, credential, "Postgres").body == {
        "message": f"Stored credential '{credential}' not found or expired"
    }
    assert refusal(1, "no-such-id", "Postgres").body == {
        "message": "Stored credential 'no-such-id' not found or expired"
    }

    # Taking does not consume it; deleting does (setup deletes after a successful create).
    for _ in range(2):
        assert (
            credentials.take_stored_credential(store, vault, 1, credential, "Postgres")["password"]
            == CANARY_PASSWORD
        )
    credentials.delete_stored_credential(store, credential)
    refusal(1, credential, "Postgres")

    stale = stash(backend, "Postgres", {"host": "b"})
    expire(backend, stale)
    assert refusal(1, stale, "Postgres").body == {
        "message": f"Stored credential '{stale}' not found or expired"
    }


def test_expired_credentials_do_not_linger_on_disk(backend: EmbeddedBackend) -> None:
    stale = stash(backend, "Postgres", {"host": "a", "password": CANARY_PASSWORD})
    expire(backend, stale)
    stash(backend, "Postgres", {"host": "b"})
    assert backend.store.query_one("SELECT id FROM stored_credentials WHERE id = ?", (stale,)) is None
