"""The connect page end to end: a real browser-like client over HTTP, a real Postgres with a checked password.

The flow the user sees: the agent asks for a link, the user opens it, types a wrong password, sees
the source's error (and not their password), fixes it, and the credential lands encrypted in the store
where `setup` can take it. Nothing under the data directory may hold the password in plain text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import markupsafe
import pytest

from tests.conftest import CANARY_PASSWORD, Database
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import SourceError
from warehouse_mcp.embedded.domain import credentials
from warehouse_mcp.embedded.domain.errors import DomainError
from warehouse_mcp.embedded.http import connect_page
from warehouse_mcp.embedded.http.errors import domain_answer

pytestmark = pytest.mark.postgres

WRONG_PASSWORD = "not-the-password-7c41a2"
TEAM = 1


@pytest.fixture
def backend(home: Path) -> Iterator[EmbeddedBackend]:
    embedded = EmbeddedBackend(home, run_scheduler=False)
    try:
        yield embedded
    finally:
        embedded.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        yield http


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the form has no CSRF token"
    return match.group(1)


def form_values(db: Database, password: str, csrf: str) -> dict[str, str]:
    config = db.config
    return {
        "csrf_token": csrf,
        "connection_string": "",
        "host": str(config["host"]),
        "port": str(config["port"]),
        "database": str(config["database"]),
        "user": str(config["user"]),
        "password": password,
        "schema": str(config["schema"]),
    }


def stored_rows(backend: EmbeddedBackend) -> int:
    row = backend.store.query_one("SELECT count(*) AS n FROM stored_credentials")
    assert row is not None
    return int(row["n"])


def files_holding(root: Path, needle: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def test_connect_flow_stores_an_encrypted_credential_that_setup_can_take(
    backend: EmbeddedBackend, client: httpx.Client, postgres_db: Database, home: Path
) -> None:
    url, token = credentials.new_connect_link(backend, TEAM, "Postgres")
    assert url == f"{backend.connect_base_url()}/connect/{token}"
    assert credentials.connect_status(backend.store, token) == {"state": "pending"}

    page = client.get(url)
    assert page.status_code == 200
    for name in ("host", "port", "database", "user", "password", "schema", "ssh_tunnel.enabled"):
        assert f'name="{name}"' in page.text
    assert re.search(r'<input[^>]*name="password"[^>]*type="password"[^>]*autocomplete="off"', page.text)
    for label_target in re.findall(r'<label[^>]*for="([^"]+)"', page.text):
        assert f'id="{label_target}"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}" src="/static/connect/connect.js">' in page.text
    assert (
        "style-src 'self'" in csp
        and '<link rel="stylesheet" href="/static/connect/connect.css">' in page.text
    )
    for asset, kind in (("connect.js", "javascript"), ("connect.css", "text/css")):
        served = client.get(f"{backend.connect_base_url()}/static/connect/{asset}")
        assert served.status_code == 200 and kind in served.headers["content-type"]
    csrf = csrf_of(page.text)

    # A wrong password: the form comes back with the source's own error, the rest kept, the secret not.
    wrong = {**postgres_db.config, "password": WRONG_PASSWORD}
    with pytest.raises(SourceError) as source_error:
        registry.connector_for("Postgres").validate(wrong)
    again = client.post(url, data=form_values(postgres_db, WRONG_PASSWORD, csrf))
    assert again.status_code == 400
    assert markupsafe.escape(str(source_error.value)) in again.text
    assert WRONG_PASSWORD not in again.text
    assert f'value="{markupsafe.escape(postgres_db.config["database"])}"' in again.text
    assert csrf_of(again.text) == csrf
    assert stored_rows(backend) == 0
    assert credentials.connect_status(backend.store, token) == {"state": "pending"}

    done = client.post(url, data=form_values(postgres_db, CANARY_PASSWORD, csrf))
    assert done.status_code == 200, done.text
    assert "Connected. Return to your assistant and tell it you are done." in done.text
    assert CANARY_PASSWORD not in done.text
    listed = credentials.list_stored_credentials(backend.store, TEAM, source_type="Postgres")
    assert len(listed) == 1
    credential = listed[0]
    assert set(credential) == {"credential_id", "source_type", "created_at", "expires_at"}
    assert credential["credential_id"] in done.text
    assert CANARY_PASSWORD not in str(listed)

    status = client.get(f"{url}/status")
    assert status.status_code == 200
    assert status.json() == {"state": "completed", "credential_id": credential["credential_id"]}
    assert status.headers["cache-control"] == "no-store"

    payload = credentials.take_stored_credential(
        backend.store, backend.vault, TEAM, credential["credential_id"], "Postgres"
    )
    assert payload["password"] == CANARY_PASSWORD
    assert payload["port"] == postgres_db.config["port"]  # a number, not the posted string
    assert payload["host"] == postgres_db.config["host"]
    assert payload["ssh_tunnel"] == {"enabled": False}
    registry.connector_for("Postgres").validate(payload)

    # The link is spent: opening or submitting it again is refused.
    for reused in (client.get(url), client.post(url, data=form_values(postgres_db, CANARY_PASSWORD, csrf))):
        assert reused.status_code == 410
        assert connect_page.EXPIRED_MESSAGE in reused.text
    assert stored_rows(backend) == 1

    backend.close()
    for secret in (CANARY_PASSWORD, WRONG_PASSWORD, token):
        assert files_holding(home, secret) == [], f"plaintext {secret!r} found under the data directory"


def test_an_expired_link_is_refused(
    backend: EmbeddedBackend, client: httpx.Client, postgres_db: Database
) -> None:
    url, _token = credentials.new_connect_link(backend, TEAM, "Postgres")
    csrf = csrf_of(client.get(url).text)
    with backend.store.transaction() as db:
        db.execute(
            "UPDATE connect_tokens SET created_at = '2020-01-01T00:00:00Z', expires_at = '2020-01-01T00:30:00Z'"
        )
    opened = client.get(url)
    assert opened.status_code == 410
    assert connect_page.EXPIRED_MESSAGE in opened.text
    submitted = client.post(url, data=form_values(postgres_db, CANARY_PASSWORD, csrf))
    assert submitted.status_code == 410
    assert stored_rows(backend) == 0
    assert client.get(f"{url}/status").json() == {"state": "expired"}


def test_unknown_links_are_refused(backend: EmbeddedBackend, client: httpx.Client) -> None:
    base = backend.connect_base_url()
    for path in ("/connect/not-a-real-token", "/connect/" + "x" * 500):
        assert client.get(base + path).status_code == 410
        assert client.post(base + path, data={"csrf_token": "x"}).status_code == 410
    assert client.get(f"{base}/connect/nope/status").json() == {"state": "expired"}


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_a_submit_without_the_right_csrf_token_is_refused(
    backend: EmbeddedBackend, client: httpx.Client, postgres_db: Database, csrf: str | None
) -> None:
    url, token = credentials.new_connect_link(backend, TEAM, "Postgres")
    real = csrf_of(client.get(url).text)
    data = form_values(postgres_db, CANARY_PASSWORD, real)
    if csrf is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = csrf
    refused = client.post(url, data=data)
    assert refused.status_code == 403
    assert CANARY_PASSWORD not in refused.text
    assert stored_rows(backend) == 0
    assert credentials.connect_status(backend.store, token) == {"state": "pending"}
    # The real token still works afterwards: a forged post does not burn the link.
    assert client.post(url, data=form_values(postgres_db, CANARY_PASSWORD, real)).status_code == 200


def test_two_tabs_submitting_at_once_store_one_credential(
    backend: EmbeddedBackend, postgres_db: Database
) -> None:
    url, _token = credentials.new_connect_link(backend, TEAM, "Postgres")
    csrf = csrf_of(httpx.get(url).text)
    data = form_values(postgres_db, CANARY_PASSWORD, csrf)
    statuses: list[int] = []
    barrier = threading.Barrier(3)

    def submit() -> None:
        barrier.wait()
        statuses.append(httpx.post(url, data=data, timeout=30).status_code)

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 410, 410]
    assert stored_rows(backend) == 1


def test_a_form_error_keeps_public_values_and_drops_secrets(
    backend: EmbeddedBackend, client: httpx.Client, postgres_db: Database
) -> None:
    url, _token = credentials.new_connect_link(backend, TEAM, "Postgres")
    csrf = csrf_of(client.get(url).text)
    data = form_values(postgres_db, CANARY_PASSWORD, csrf)
    data["port"] = "fifty"
    data["host"] = '<script>alert("x")</script>'
    page = client.post(url, data=data)
    assert page.status_code == 400
    assert "Port must be a whole number." in page.text
    assert CANARY_PASSWORD not in page.text
    assert '<script>alert("x")</script>' not in page.text
    assert f'value="{markupsafe.escape(data["host"])}"' in page.text  # shown again, escaped
    assert stored_rows(backend) == 0


def test_the_page_refuses_what_only_a_posthog_backend_can_do(
    backend: EmbeddedBackend, client: httpx.Client
) -> None:
    url, _token = credentials.new_connect_link(backend, TEAM, "Stripe")
    page = client.get(url)
    assert connect_page.OAUTH_NOTE in page.text
    answer = client.post(url, data={"csrf_token": csrf_of(page.text), "auth_method.selection": "oauth"})
    assert answer.status_code == 400
    assert "OAuth connections need a PostHog backend" in answer.text
    assert stored_rows(backend) == 0


def test_store_credentials_and_the_page_share_one_check(
    backend: EmbeddedBackend, postgres_db: Database
) -> None:
    with pytest.raises(DomainError) as wrong:
        credentials.store_credential(
            backend.store, backend.vault, TEAM, "Postgres", {**postgres_db.config, "password": WRONG_PASSWORD}
        )
    answer = domain_answer(wrong.value)
    assert answer.status == 400
    assert WRONG_PASSWORD not in str(answer.body)
    stored = credentials.store_credential(backend.store, backend.vault, TEAM, "Postgres", postgres_db.config)
    assert stored["source_type"] == "Postgres"


def test_an_oversized_form_is_refused_without_storing(backend: EmbeddedBackend, client: httpx.Client) -> None:
    url, token = credentials.new_connect_link(backend, TEAM, "Postgres")
    csrf = csrf_of(client.get(url).text)
    huge = client.post(url, data={"csrf_token": csrf, "host": "x" * (connect_page.MAX_FORM_BYTES + 1)})
    assert huge.status_code == 413
    many = client.post(
        url, data={"csrf_token": csrf, **{f"f{i}": "" for i in range(connect_page.MAX_FIELDS + 1)}}
    )
    assert many.status_code == 413
    assert stored_rows(backend) == 0
    assert credentials.connect_status(backend.store, token) == {"state": "pending"}


def test_a_select_option_field_reaches_the_connector_stripe(
    backend: EmbeddedBackend, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.stripe_server import DEFAULT_KEY, FakeStripe
    from warehouse_mcp.embedded.connectors.stripe import API_BASE_ENV

    with FakeStripe() as stripe:
        monkeypatch.setenv(API_BASE_ENV, stripe.url)
        url, _token = credentials.new_connect_link(backend, TEAM, "Stripe")
        csrf = csrf_of(client.get(url).text)
        chosen = {"csrf_token": csrf, "auth_method.selection": "api_key"}
        wrong = client.post(
            url, data={**chosen, "auth_method:api_key.stripe_secret_key": "rk_test_wrong_key_000"}
        )
        assert wrong.status_code == 400 and "rk_test_wrong_key_000" not in wrong.text
        done = client.post(url, data={**chosen, "auth_method:api_key.stripe_secret_key": DEFAULT_KEY})
        assert done.status_code == 200, done.text
    (credential,) = credentials.list_stored_credentials(backend.store, TEAM, source_type="Stripe")
    payload = credentials.take_stored_credential(
        backend.store, backend.vault, TEAM, credential["credential_id"], "Stripe"
    )
    assert payload == {
        "auth_method": {"selection": "api_key", "stripe_secret_key": DEFAULT_KEY}
    }  # PostHog's shape
