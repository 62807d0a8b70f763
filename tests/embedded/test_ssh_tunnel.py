"""SSH tunnels against the real loopback sshd (tools/prepare_services.sh) to the real databases: every
connector operation goes through the tunnel, one tunnel per scope, host keys pinned or trusted on first
use, and each failure names the hop that failed without echoing a secret."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import CANARY_PASSWORD, Bastion, Database, free_port
from warehouse_mcp.embedded.connectors import mysql, postgres, ssh_tunnel
from warehouse_mcp.embedded.connectors.base import ReadRequest, SourceError
from warehouse_mcp.embedded.connectors.mysql import MySQLConnector
from warehouse_mcp.embedded.connectors.postgres import PostgresConnector
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.warehouse import Warehouse

from .sync_support import add_schema, add_source, run_sync

SEED = (
    "CREATE TABLE items (id integer PRIMARY KEY, name varchar(20))",
    "INSERT INTO items VALUES (1, 'a'), (2, 'b')",
)


def _sync_everything(connector: Any, config: dict) -> list[dict]:
    connector.validate(config)
    tables = connector.discover(config)
    assert [table.name for table in tables] == ["items"]
    rows: list[dict] = []
    for batch in connector.read(config, ReadRequest(table=tables[0])):
        rows.extend(batch.to_pylist())
    return rows


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("method", ["keypair", "password", "encrypted_keypair"])
def test_postgres_validates_discovers_and_reads_through_the_tunnel(
    postgres_db: Database, bastion: Bastion, method: str
) -> None:
    postgres_db.execute(*SEED)
    if method == "encrypted_keypair":
        tunnel = bastion.tunnel("keypair")
        tunnel["auth"] = {
            **tunnel["auth"],
            "private_key": bastion.encrypted_key,
            "passphrase": bastion.passphrase,
        }  # type: ignore[dict-item]
    else:
        tunnel = bastion.tunnel(method)
    config = {**postgres_db.config, "ssh_tunnel": tunnel}
    assert _sync_everything(PostgresConnector(), config) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.mark.mysql
def test_mysql_validates_discovers_and_reads_through_the_tunnel(mysql_db: Database, bastion: Bastion) -> None:
    mysql_db.execute(*SEED)
    config = {**mysql_db.config, "ssh_tunnel": bastion.tunnel("password")}
    assert _sync_everything(MySQLConnector(), config) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.mark.postgres
def test_the_connection_really_comes_through_the_bastion(postgres_db: Database, bastion: Bastion) -> None:
    config = {**postgres_db.config, "ssh_tunnel": bastion.tunnel()}
    with postgres.connection_params(config) as params:
        assert params["hostaddr"] == "127.0.0.1" and params["port"] != "5432"
        assert params["host"] == "127.0.0.1"  # the database's own name, for TLS verification
        with psycopg.connect(**params) as connection:
            client_port = connection.execute("SELECT inet_client_port()").fetchone()
            # sshd opened the connection to Postgres: its port is not the tunnel's local port
            assert client_port is not None and str(client_port[0]) != params["port"]
            assert connection.execute("SELECT current_database()").fetchone() == (postgres_db.name,)


@pytest.mark.postgres
def test_one_tunnel_per_scope_closed_when_the_scope_ends(postgres_db: Database, bastion: Bastion) -> None:
    postgres_db.execute(*SEED)
    config = {**postgres_db.config, "ssh_tunnel": bastion.tunnel()}
    with ssh_tunnel.tunnel_scope() as scope:
        _sync_everything(PostgresConnector(), config)
        postgres.check_cdc_prerequisites(config, ["items"])
        assert len(scope.tunnels) == 1
        (tunnel,) = scope.tunnels.values()
        assert _listening(tunnel.local_port)
        assert scope.host_keys == {(bastion.host, bastion.port): bastion.fingerprint}
    assert not scope.tunnels and not _listening(tunnel.local_port)


@pytest.mark.postgres
def test_without_a_scope_each_connection_closes_its_own_tunnel(
    postgres_db: Database, bastion: Bastion
) -> None:
    config = {**postgres_db.config, "ssh_tunnel": bastion.tunnel()}
    with postgres.connection_params(config) as params:
        port = int(params["port"])
        assert _listening(port)
    assert not _listening(port)


@pytest.mark.postgres
def test_a_pinned_host_key_is_checked_before_signing_in(postgres_db: Database, bastion: Bastion) -> None:
    good = {
        **postgres_db.config,
        "ssh_tunnel": bastion.tunnel("password", host_key_fingerprint=bastion.fingerprint),
    }
    PostgresConnector().validate(good)
    wrong = "SHA256:" + "A" * 43
    bad = {**postgres_db.config, "ssh_tunnel": bastion.tunnel("password", host_key_fingerprint=wrong)}
    with pytest.raises(SourceError) as caught:
        PostgresConnector().validate(bad)
    message = str(caught.value)
    assert (
        f"host key of SSH host 127.0.0.1:{bastion.port} is {bastion.fingerprint}, not the pinned {wrong}"
        in message
    )
    assert bastion.password not in message
    with pytest.raises(SourceError, match="fingerprint must look like SHA256:"):
        PostgresConnector().validate(
            {**postgres_db.config, "ssh_tunnel": bastion.tunnel(host_key_fingerprint="not-a-fingerprint")}
        )


def _failure(config: dict, connector: Any = None) -> str:
    with pytest.raises(SourceError) as caught:
        (connector or PostgresConnector()).validate(config)
    message = str(caught.value)
    for secret in (CANARY_PASSWORD, "wrong-password-canary", "BEGIN OPENSSH PRIVATE KEY"):
        assert secret not in message
    return message


@pytest.mark.postgres
def test_refused_logins_name_the_ssh_host_and_user(postgres_db: Database, bastion: Bastion) -> None:
    tunnel = bastion.tunnel("password")
    tunnel["auth"] = {**tunnel["auth"], "password": "wrong-password-canary"}  # type: ignore[dict-item]
    message = _failure({**postgres_db.config, "ssh_tunnel": tunnel})
    assert message == (
        f"SSH tunnel: SSH host 127.0.0.1:{bastion.port} refused the login of user 'wmcp_tunnel' "
        "with this password: check the username and password"
    )
    stranger = bastion.tunnel()
    stranger["auth"] = {**stranger["auth"], "username": "nobody_here"}  # type: ignore[dict-item]
    assert "refused the login of user 'nobody_here' with this private key" in _failure(
        {**postgres_db.config, "ssh_tunnel": stranger}
    )
    wrong_phrase = bastion.tunnel()
    wrong_phrase["auth"] = {
        **wrong_phrase["auth"],
        "private_key": bastion.encrypted_key,
        "passphrase": "nope",
    }  # type: ignore[dict-item]
    assert _failure({**postgres_db.config, "ssh_tunnel": wrong_phrase}) == (
        "SSH tunnel: the private key's passphrase is wrong"
    )
    no_phrase = bastion.tunnel()
    no_phrase["auth"] = {**no_phrase["auth"], "private_key": bastion.encrypted_key}  # type: ignore[dict-item]
    assert "the private key is encrypted: enter its passphrase" in _failure(
        {**postgres_db.config, "ssh_tunnel": no_phrase}
    )
    garbage = bastion.tunnel()
    garbage["auth"] = {**garbage["auth"], "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"}  # type: ignore[dict-item]
    assert "the private key could not be read" in _failure({**postgres_db.config, "ssh_tunnel": garbage})


@pytest.mark.postgres
def test_an_unreachable_bastion_and_an_unknown_host_are_named(
    postgres_db: Database, bastion: Bastion
) -> None:
    closed = free_port()
    message = _failure({**postgres_db.config, "ssh_tunnel": bastion.tunnel(port=closed)})
    assert message.startswith(f"SSH tunnel: could not reach SSH host 127.0.0.1:{closed}: ")
    message = _failure({**postgres_db.config, "ssh_tunnel": bastion.tunnel(host="no-such-host.invalid")})
    assert message.startswith("SSH tunnel: could not reach SSH host no-such-host.invalid:22022: ")


@pytest.mark.postgres
@pytest.mark.mysql
def test_a_database_the_bastion_cannot_reach_is_named_with_both_hops(
    postgres_db: Database, mysql_db: Database, bastion: Bastion
) -> None:
    closed = free_port()
    message = _failure({**postgres_db.config, "port": closed, "ssh_tunnel": bastion.tunnel()})
    assert message.startswith(
        f"SSH tunnel: SSH host 127.0.0.1:{bastion.port} could not reach the database at 127.0.0.1:{closed}: "
    )
    message = _failure({**mysql_db.config, "port": closed, "ssh_tunnel": bastion.tunnel()}, MySQLConnector())
    assert message.startswith(f"SSH tunnel: SSH host 127.0.0.1:{bastion.port} could not reach the database")


@pytest.mark.postgres
@pytest.mark.mysql
def test_wrong_database_credentials_through_the_tunnel_name_the_database_hop(
    postgres_db: Database, mysql_db: Database, bastion: Bastion
) -> None:
    message = _failure(
        {**postgres_db.config, "password": "wrong-password-canary", "ssh_tunnel": bastion.tunnel()}
    )
    assert message.startswith("Invalid credentials: ")
    message = _failure(
        {**mysql_db.config, "password": "wrong-password-canary", "ssh_tunnel": bastion.tunnel()},
        MySQLConnector(),
    )
    assert message.startswith("Invalid credentials: ")


def test_incomplete_tunnels_are_clear_errors() -> None:
    base = {
        "enabled": True,
        "host": "bastion",
        "port": 22,
        "auth": {"selection": "password", "username": "me"},
    }
    cases = [
        ({**base, "host": ""}, "SSH tunnel: the SSH host is missing"),
        ({**base, "port": "x"}, "SSH tunnel: the SSH port must be a number from 1 to 65535, got 'x'"),
        ({**base, "auth": {"selection": "password"}}, "SSH tunnel: the SSH username is missing"),
        (base, "SSH tunnel: the SSH password is missing"),
        (
            {**base, "auth": {"selection": "keypair", "username": "me"}},
            "SSH tunnel: the private key is missing",
        ),
        (
            {**base, "auth": {"selection": "agent", "username": "me"}},
            "SSH tunnel: authentication 'agent' is not supported; use one of: password, keypair",
        ),
    ]
    for tunnel, expected in cases:
        with pytest.raises(SourceError) as caught:
            ssh_tunnel.tunnel_config({"ssh_tunnel": tunnel})
        assert str(caught.value) == expected
    assert ssh_tunnel.tunnel_config({"ssh_tunnel": {"enabled": False, "host": "x"}}) is None
    assert ssh_tunnel.tunnel_config({}) is None


@pytest.mark.mysql
def test_mysql_connection_args_go_through_the_tunnel(mysql_db: Database, bastion: Bastion) -> None:
    import pymysql

    config = {**mysql_db.config, "ssh_tunnel": bastion.tunnel()}
    with mysql.connection_args(config) as args:
        address = args.pop("address")
        assert address[0] == "127.0.0.1" and address[1] != 3306
        connection = pymysql.connect(**{**args, "port": address[1], "host": address[0]})
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT DATABASE()")
                assert cursor.fetchone() == (mysql_db.name,)
        finally:
            connection.close()


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_sync_job_uses_one_tunnel_and_closes_it(
    kind: str, request: pytest.FixtureRequest, bastion: Bastion, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    db.execute(*SEED)
    opened: list[ssh_tunnel.Tunnel] = []
    real_open = ssh_tunnel.Tunnel.open

    def counting_open(self: ssh_tunnel.Tunnel) -> ssh_tunnel.Tunnel:
        opened.append(self)
        return real_open(self)

    monkeypatch.setattr(ssh_tunnel.Tunnel, "open", counting_open)
    store, vault = Store(home), Vault(home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    try:
        source_type = "Postgres" if kind == "postgres" else "MySQL"
        source_id = add_source(store, vault, source_type, {**db.config, "ssh_tunnel": bastion.tunnel()})
        schema_id = add_schema(store, source_id, "items")
        outcome = run_sync(store, vault, warehouse, schema_id)  # discovery and the read: one tunnel
        assert (outcome.status, outcome.rows_synced, outcome.error) == ("Completed", 2, None)
        assert len(opened) == 1
        assert not _listening(opened[0].local_port)  # closed with the job
    finally:
        warehouse.close()
