"""End to end through the MCP client: connect link → the connect page's form with an SSH tunnel (key or
password) → setup → completed syncs, for Postgres and MariaDB, through the real loopback sshd."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import Bastion, Database
from tests.e2e.flow_support import call, embedded, seed_shop, set_up_and_sync
from warehouse_mcp.harness import complete_connect_page
from warehouse_mcp.server import build_server


def tunnel_fields(bastion: Bastion, method: str) -> dict[str, object]:
    """The connect page's SSH tunnel inputs, as a user fills them."""
    fields: dict[str, object] = {
        "ssh_tunnel.enabled": True,
        "ssh_tunnel.host": bastion.host,
        "ssh_tunnel.port": bastion.port,
        "ssh_tunnel.auth.selection": method,
        "ssh_tunnel.auth.username": bastion.user,
    }
    if method == "password":
        fields["ssh_tunnel.auth.password.password"] = bastion.password
    else:  # the key that needs a passphrase: both secrets travel
        fields["ssh_tunnel.auth.keypair.private_key"] = bastion.encrypted_key
        fields["ssh_tunnel.auth.keypair.passphrase"] = bastion.passphrase
    return fields


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "method"),
    [("postgres", "keypair"), ("postgres", "password"), ("mysql", "keypair"), ("mysql", "password")],
)
async def test_connect_through_an_ssh_tunnel_setup_and_sync(
    kind: str, method: str, request: pytest.FixtureRequest, home: Path, bastion: Bastion
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    source_type = "Postgres" if kind == "postgres" else "MySQL"
    seed_shop(db)
    secrets = [bastion.password, bastion.passphrase, bastion.encrypted_key.splitlines()[1]]
    async with Client(build_server(embedded(home))) as client:
        link = await call(client, "data-warehouse-source-connect-link", {"source_type": source_type})
        credential_id = complete_connect_page(
            link["connect_url"], {**db.config, **tunnel_fields(bastion, method)}
        )
        created = await set_up_and_sync(client, source_type, {"credential_id": credential_id}, timeout=90)
        source_id = created["id"]
        source = await call(client, "external-data-sources-retrieve", {"id": source_id})
        assert source["status"] == "Completed", source
        by_name = {schema["name"]: schema for schema in source["schemas"]}
        assert by_name["customers"]["table"]["row_count"] == 25
        # the bastion's host key was trusted on first use, stored with the source and shown
        tunnel = source["job_inputs"]["ssh_tunnel"]
        assert tunnel["host_key_fingerprint"] == bastion.fingerprint
        assert (tunnel["host"], int(tunnel["port"]), tunnel["auth"]["username"]) == (
            bastion.host,
            bastion.port,
            bastion.user,
        )
        for secret in secrets:
            assert secret not in str(source)

        if (kind, method) in (("postgres", "keypair"), ("mysql", "password")):  # once per database
            await later_syncs_and_a_changed_host_key(client, db, source_id, bastion, home)
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in content, path


async def later_syncs_and_a_changed_host_key(
    client: Client, db: Database, source_id: str, bastion: Bastion, home: Path
) -> None:
    # a later sync (a reload after a change at the source) goes through the tunnel too
    db.execute("INSERT INTO customers (email) VALUES ('late@x.io')")
    await call(client, "external-data-sources-reload-create", {"id": source_id})
    waited = await call(client, "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 90})
    assert waited["done"], waited
    source = await call(client, "external-data-sources-retrieve", {"id": source_id})
    customers = next(schema for schema in source["schemas"] if schema["name"] == "customers")
    assert (customers["status"], customers["table"]["row_count"]) == ("Completed", 26)

    # syncs check the stored host key: a bastion that shows another key is refused, and says so
    wrong = "SHA256:" + "B" * 43
    with sqlite3.connect(home / "metadata.sqlite3") as metadata:
        stored = json.loads(
            metadata.execute("SELECT job_inputs FROM sources WHERE id = ?", (source_id,)).fetchone()[0]
        )
        stored["ssh_tunnel"]["host_key_fingerprint"] = wrong
        metadata.execute("UPDATE sources SET job_inputs = ? WHERE id = ?", (json.dumps(stored), source_id))
    await call(client, "external-data-sources-reload-create", {"id": source_id})
    await call(client, "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 90})
    source = await call(client, "external-data-sources-retrieve", {"id": source_id})
    assert source["status"] == "Failed", source
    assert f"is {bastion.fingerprint}, not the pinned {wrong}" in str(source["latest_error"])
