"""The canary: the real password of the wmcp_secure role travels the whole flow and is found only as ciphertext.

Flow: connect page (and its error re-render), setup, sync, reads that use the stored password, error paths
(wrong host, unreachable port, a failing sync), logs (caplog at DEBUG; the stderr of a stdio server at
DEBUG), every tool result, the transcript file, and every byte under the data directory. The stored
secret must still decrypt to the canary: it is there, only never in plaintext.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from tests.conftest import CANARY_PASSWORD, Bastion, Database
from tests.fakes.recording_api import Recorded, RecordingApi, Reply
from tests.reliability.support import BIN, files_containing, result_text
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.source_records import source_config
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.harness import ConnectPageError, EmbeddedApi, _FormReader, complete_connect_page
from warehouse_mcp.secret_guard import Redactor
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.anyio]

CANARY = CANARY_PASSWORD.encode()


class Recorder:
    """Calls tools and keeps every result, to scan them all at the end."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.results: list[CallToolResult] = []

    async def __call__(self, tool: str, arguments: dict[str, Any], *, error: bool = False) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        self.results.append(result)
        assert bool(result.is_error) == error, (tool, result_text(result)[:500])
        return result.structured_content or {"text": result_text(result)}

    def leaks(self) -> list[str]:
        return [
            result_text(result)[:200]
            for result in self.results
            if CANARY_PASSWORD in result.model_dump_json()
        ]


def seed(db: Database) -> None:
    db.execute(
        "CREATE TABLE customers (id serial PRIMARY KEY, email text, updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE events (name text, happened date)",
        "INSERT INTO customers (email) SELECT 'u' || i || '@x.io' FROM generate_series(1, 30) i",
        "INSERT INTO events VALUES ('a', '2026-01-01')",
    )


def refused_page_html(connect_url: str, fields: dict[str, Any]) -> str:
    """Submit the connect page the way a browser does and return the re-rendered page (a refusal)."""
    with httpx.Client(timeout=30) as http:
        reader = _FormReader()
        reader.feed(http.get(connect_url).text)
        answer = http.post(
            connect_url, data={**reader.values, **{key: str(value) for key, value in fields.items()}}
        )
    assert answer.status_code != 200 or "Connected" not in answer.text
    return answer.text


async def test_canary_through_connect_page_setup_sync_errors_logs_and_disk(
    tmp_path: Path, postgres_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seed(postgres_db)
    home, transcript = tmp_path / "home", tmp_path / "transcript.jsonl"
    wrong_host = {**postgres_db.config, "host": "no-such-host.invalid"}
    settings = Settings(backend="embedded", home=home, transcript_path=transcript)  # no inline secrets
    page_errors: list[str] = []
    async with Client(build_server(settings)) as client:
        call = Recorder(client)
        # The connect page: a refused submission first (wrong host, then an unreachable port), then the real one.
        refused = await call("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        with pytest.raises(ConnectPageError) as raised:
            complete_connect_page(refused["connect_url"], wrong_host)
        page_errors.append(str(raised.value))
        page_errors.append(refused_page_html(refused["connect_url"], {**postgres_db.config, "port": 1}))
        link = await call("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        credential_id = complete_connect_page(link["connect_url"], postgres_db.config)
        await call("data-warehouse-stored-credentials-list", {"source_type": "Postgres"})

        source = await call(
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": credential_id}},
        )
        source_id = source["id"]
        assert (await call("data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}))[
            "done"
        ]
        retrieved = await call("external-data-sources-retrieve", {"id": source_id})
        schema_ids = {schema["name"]: schema["id"] for schema in retrieved["schemas"]}
        await call("external-data-sources-list", {})
        await call("external-data-schemas-list", {})
        await call("external-data-schemas-retrieve", {"id": schema_ids["customers"]})
        await call("external-data-schemas-incremental-fields-create", {"id": schema_ids["customers"]})
        await call("external-data-sources-check-cdc-prerequisites-for-source-create", {"id": source_id})
        await call("external-data-sources-cdc-status-retrieve", {"id": source_id})
        await call("external-data-sources-refresh-schemas-create", {"id": source_id})

        # Error paths that hold the stored password: a new host, an unreachable port, a sync that fails.
        await call(
            "external-data-sources-partial-update",
            {"id": source_id, "job_inputs": {"host": "elsewhere"}},
            error=True,
        )
        await call(
            "external-data-sources-partial-update", {"id": source_id, "job_inputs": {"port": 1}}, error=True
        )
        postgres_db.execute("DROP TABLE events")
        await call("external-data-schemas-reload-create", {"id": schema_ids["events"]})
        await call("data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60})
        jobs = await call("external-data-sources-jobs-retrieve", {"id": source_id})
        assert any(job["status"] == "Failed" and job["latest_error"] for job in jobs["results"]), jobs
        await call("external-data-sources-retrieve", {"id": source_id})

    assert call.leaks() == []
    assert [text for text in page_errors if CANARY_PASSWORD in text] == []
    assert "HTTP Request" in caplog.text and any(r.levelno == logging.DEBUG for r in caplog.records)
    assert CANARY_PASSWORD not in caplog.text
    assert len(transcript.read_text().splitlines()) == len(call.results)
    assert files_containing(tmp_path, CANARY) == []
    # It is stored, as ciphertext: the secret decrypts to the canary.
    assert source_config(Store(home), Vault(home), source_id)["password"] == CANARY_PASSWORD


async def test_canary_through_a_stdio_server_at_debug_with_inline_secrets(
    tmp_path: Path, postgres_db: Database
) -> None:
    seed(postgres_db)
    home, transcript, stderr = tmp_path / "home", tmp_path / "transcript.jsonl", tmp_path / "stderr.log"
    env = {
        "PATH": os.environ["PATH"],
        "WAREHOUSE_MCP_HOME": str(home),
        "WAREHOUSE_MCP_ALLOW_INLINE_SECRETS": "1",
        "WAREHOUSE_MCP_LOG_LEVEL": "DEBUG",
        "WAREHOUSE_MCP_TRANSCRIPT": str(transcript),
    }
    config = postgres_db.config
    as_url = f"postgresql://{config['user']}:{CANARY_PASSWORD}@127.0.0.1:1/{config['database']}"
    with stderr.open("w") as errlog:
        async with Client(stdio_client(StdioServerParameters(command=BIN, env=env), errlog=errlog)) as client:
            call = Recorder(client)
            await call(
                "external-data-sources-database-schema-create", {"source_type": "Postgres", "config": config}
            )
            stored = await call(
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": config},
            )
            source = await call(
                "data-warehouse-source-setup",
                {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            )
            assert (
                await call("data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 60})
            )["done"]
            await call("external-data-sources-retrieve", {"id": source["id"]})
            for wrong in (
                {**config, "host": "no-such-host.invalid"},
                {**config, "port": 1},
                {"connection_string": as_url},
            ):
                await call(
                    "external-data-sources-store-credentials-create",
                    {"source_type": "Postgres", "payload": wrong},
                    error=True,
                )
                await call(
                    "external-data-sources-check-cdc-prerequisites-create",
                    {"source_type": "Postgres", "config": wrong},
                    error=True,
                )
            await call(
                "external-data-sources-partial-update",
                {"id": source["id"], "job_inputs": {"password": CANARY_PASSWORD, "port": 1}},
                error=True,
            )
    assert call.leaks() == []
    log = stderr.read_text()
    assert "DEBUG" in log
    assert CANARY_PASSWORD not in log
    assert transcript.read_text().count("\n") == len(call.results)
    assert files_containing(tmp_path, CANARY) == []


@pytest.mark.parametrize(
    ("path", "changes"),
    [
        ("store_credentials/", {"host": "no-such-host.invalid"}),
        ("store_credentials/", {"port": 1}),
        ("store_credentials/", {"database": "no_such_database"}),
        ("database_schema/", {"port": 1}),
        ("check_cdc_prerequisites/", {"host": "no-such-host.invalid"}),
        ("store_credentials/", {"connection_string": "postgresql://wmcp_secure:{canary}@127.0.0.1:1/x"}),
        ("store_credentials/", {"connection_string": "postgresql://wmcp_secure:{canary}@[bad"}),
    ],
    ids=["host", "port", "database", "discovery", "cdc", "url", "bad-url"],
)
def test_raw_api_errors_never_quote_the_password(
    tmp_path: Path, postgres_db: Database, path: str, changes: dict
) -> None:
    """The embedded API itself, without the MCP redactor in front: its error bodies must not carry the secret."""
    changes = {
        key: value.format(canary=CANARY_PASSWORD) if isinstance(value, str) else value
        for key, value in changes.items()
    }
    body = {**postgres_db.config, **changes}
    if "connection_string" in changes:  # the string alone says where to connect (the form's fields would win)
        body = {
            key: value
            for key, value in body.items()
            if key not in ("host", "port", "database", "user", "password")
        }
    payload: dict[str, Any] = (
        {"source_type": "Postgres", "payload": body}
        if path == "store_credentials/"
        else {"source_type": "Postgres", **body}
    )
    with EmbeddedApi(tmp_path / "home", run_scheduler=False) as api:
        answer = httpx.post(
            f"{api.url}/api/projects/1/external_data_sources/{path}",
            json=payload,
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=30,
        )
    assert answer.status_code == 400, answer.text
    assert CANARY_PASSWORD not in answer.text
    assert files_containing(tmp_path, CANARY) == []


async def test_ssh_tunnel_secrets_are_canaries_too(
    tmp_path: Path, postgres_db: Database, bastion: Bastion, caplog: pytest.LogCaptureFixture
) -> None:
    """The SSH password, the private key and its passphrase travel the connect page (refusals included),
    setup, syncs through the tunnel, error paths, logs and the disk, and are found only as ciphertext."""
    caplog.set_level(logging.DEBUG)
    seed(postgres_db)
    home, transcript = tmp_path / "home", tmp_path / "transcript.jsonl"
    key_line = bastion.encrypted_key.splitlines()[1]
    canaries = [CANARY_PASSWORD, bastion.password, bastion.passphrase, key_line]
    tunnel = {
        "ssh_tunnel.enabled": True,
        "ssh_tunnel.host": bastion.host,
        "ssh_tunnel.port": bastion.port,
        "ssh_tunnel.auth.username": bastion.user,
    }
    with_password = {
        **tunnel,
        "ssh_tunnel.auth.selection": "password",
        "ssh_tunnel.auth.password.password": bastion.password,
    }
    with_key = {
        **tunnel,
        "ssh_tunnel.auth.selection": "keypair",
        "ssh_tunnel.auth.keypair.private_key": bastion.encrypted_key,
        "ssh_tunnel.auth.keypair.passphrase": bastion.passphrase,
    }
    settings = Settings(backend="embedded", home=home, transcript_path=transcript)
    page_errors: list[str] = []
    async with Client(build_server(settings)) as client:
        call = Recorder(client)
        refused = await call("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        for wrong in (
            {**with_password, "ssh_tunnel.host": "no-such-host.invalid"},  # the password goes nowhere
            {**with_key, "port": 1},  # the bastion cannot reach the database
            {**with_key, "password": "wrong-db-password"},  # the database refuses, through the tunnel
            {**with_key, "ssh_tunnel.auth.username": "nobody_here"},  # the bastion refuses the key
        ):
            page_errors.append(refused_page_html(refused["connect_url"], {**postgres_db.config, **wrong}))
        assert "SSH tunnel: SSH host 127.0.0.1" in page_errors[1]
        keyed = await call("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        complete_connect_page(keyed["connect_url"], {**postgres_db.config, **with_key})
        link = await call("data-warehouse-source-connect-link", {"source_type": "Postgres"})
        credential_id = complete_connect_page(link["connect_url"], {**postgres_db.config, **with_password})
        source = await call(
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": credential_id}},
        )
        source_id = source["id"]
        assert (await call("data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}))[
            "done"
        ]
        retrieved = await call("external-data-sources-retrieve", {"id": source_id})
        assert retrieved["status"] == "Completed", retrieved
        await call("external-data-sources-check-cdc-prerequisites-for-source-create", {"id": source_id})
        await call("external-data-sources-cdc-status-retrieve", {"id": source_id})
        await call("external-data-sources-refresh-schemas-create", {"id": source_id})
        stored_tunnel = retrieved["job_inputs"]["ssh_tunnel"]
        await call(  # another bastion with the stored SSH password: refused
            "external-data-sources-partial-update",
            {"id": source_id, "job_inputs": {"ssh_tunnel": {**stored_tunnel, "host": "elsewhere"}}},
            error=True,
        )
        await call(  # the stored secrets reused against a port nothing listens on: a clear error
            "external-data-sources-partial-update",
            {"id": source_id, "job_inputs": {"port": 1}},
            error=True,
        )
        postgres_db.execute("DROP TABLE events")
        events = next(schema["id"] for schema in retrieved["schemas"] if schema["name"] == "events")
        await call("external-data-schemas-reload-create", {"id": events})
        await call("data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60})
        await call("external-data-sources-jobs-retrieve", {"id": source_id})

    for canary in canaries:
        assert [result_text(r)[:200] for r in call.results if canary in r.model_dump_json()] == []
        assert [text[:200] for text in page_errors if canary in text] == []
        assert canary not in caplog.text
        assert files_containing(tmp_path, canary.encode()) == []
    stored = source_config(Store(home), Vault(home), source_id)["ssh_tunnel"]
    assert stored["auth"]["password"] == bastion.password  # stored, as ciphertext
    assert stored["host_key_fingerprint"] == bastion.fingerprint


# --- guards: the same scans, with the protection switched off, must find the canary ----------------------


def _echo(request: Recorded) -> Reply:
    return Reply(201, {"credential_id": "c1", "echo": request.body})


async def test_guard_without_redaction_the_canary_appears_in_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Redactor, "redact", lambda self, value, form_secret_keys=(): value)
    transcript = tmp_path / "transcript.jsonl"
    arguments = {
        "source_type": "Postgres",
        "payload": {"host": "db", "user": "u", "password": CANARY_PASSWORD},
    }
    with RecordingApi() as api:
        api.responder = _echo  # an API that (wrongly) echoes what it was sent
        settings = Settings(
            backend="posthog",
            api_key="phx_guard",
            posthog_host=api.url,
            allow_inline_secrets=True,
            transcript_path=transcript,
        )
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("external-data-sources-store-credentials-create", arguments)
    assert not result.is_error
    assert CANARY_PASSWORD in result.model_dump_json()
    assert files_containing(tmp_path, CANARY) == [transcript]


async def test_with_redaction_the_same_echo_is_scrubbed(tmp_path: Path) -> None:
    """The guard's control: the identical call with the real redactor leaks nothing."""
    transcript = tmp_path / "transcript.jsonl"
    arguments = {
        "source_type": "Postgres",
        "payload": {"host": "db", "user": "u", "password": CANARY_PASSWORD},
    }
    with RecordingApi() as api:
        api.responder = _echo
        settings = Settings(
            backend="posthog",
            api_key="phx_guard",
            posthog_host=api.url,
            allow_inline_secrets=True,
            transcript_path=transcript,
        )
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("external-data-sources-store-credentials-create", arguments)
    assert not result.is_error and CANARY_PASSWORD not in result.model_dump_json()
    assert json.loads(transcript.read_text())["arguments"]["payload"]["password"] == "[REDACTED]"
    assert files_containing(tmp_path, CANARY) == []
