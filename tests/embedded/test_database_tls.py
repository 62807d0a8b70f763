"""TLS to the local PostgreSQL and MariaDB (TLS turned on by tools/prepare_services.sh with a test CA):
each of the form's TLS choices gives the connection it promises, and a certificate that does not verify
is refused with a clear message."""

from __future__ import annotations

import datetime as dt

import psycopg
import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import SERVICES_DIR, Bastion, Database
from warehouse_mcp.embedded.connectors import mysql, postgres
from warehouse_mcp.embedded.connectors.base import SourceError
from warehouse_mcp.embedded.connectors.mysql import MySQLConnector
from warehouse_mcp.embedded.connectors.postgres import PostgresConnector


def _other_ca() -> str:
    """A CA that signed nothing on this machine."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pg_ssl(config: dict) -> bool:
    """Whether the connector's connection to Postgres with `config` is encrypted (asked of the server)."""
    with postgres.connection_params(config) as params, psycopg.connect(**params) as connection:
        row = connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    return bool(row[0])


def _my_cipher(config: dict) -> str:
    with mysql.connection_args(config) as args:
        host, port = args.pop("address")
        connection = pymysql.connect(**args)
        assert (host, port) == (args["host"], args["port"])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = cursor.fetchone()
        finally:
            connection.close()
    assert row is not None
    return str(row[1])


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("choice", "encrypted"),
    [
        ({}, True),
        ({"ssl_mode": "prefer"}, True),
        ({"ssl_mode": "require"}, True),
        ({"ssl_mode": "disable"}, False),
    ],
)
def test_postgres_tls_modes(postgres_db: Database, tls_ca: str, choice: dict, encrypted: bool) -> None:
    config = {**postgres_db.config, **choice}
    PostgresConnector().validate(config)
    assert _pg_ssl(config) is encrypted


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_postgres_verifies_the_server_against_the_given_ca(
    postgres_db: Database, tls_ca: str, mode: str
) -> None:
    config = {**postgres_db.config, "ssl_mode": mode, "ssl_ca": tls_ca}
    PostgresConnector().validate(config)
    assert _pg_ssl(config)
    with pytest.raises(SourceError) as caught:
        PostgresConnector().validate({**config, "ssl_ca": _other_ca()})
    assert str(caught.value).startswith("Could not connect to 127.0.0.1:5432: ")
    assert "certificate verify failed" in str(caught.value)


@pytest.mark.postgres
def test_postgres_verify_full_checks_the_host_name(postgres_db: Database, tls_ca: str) -> None:
    # The certificate names 127.0.0.1 and localhost, not db.example.com (reached at 127.0.0.1 here).
    config = {**postgres_db.config, "ssl_mode": "verify-full", "ssl_ca": tls_ca}
    PostgresConnector().validate({**config, "host": "localhost"})
    renamed = {**config, "host": None, "connection_string": "host=db.example.com hostaddr=127.0.0.1"}
    with pytest.raises(SourceError, match=r'does not match host name "db\.example\.com"'):
        PostgresConnector().validate(renamed)
    PostgresConnector().validate({**renamed, "ssl_mode": "verify-ca"})


@pytest.mark.postgres
def test_postgres_connection_string_tls_settings_count_and_the_stronger_mode_wins(
    postgres_db: Database, tls_ca: str
) -> None:
    ca_path = SERVICES_DIR / "tls" / "ca.crt"
    string = f"postgresql://127.0.0.1:5432/{postgres_db.name}?sslmode=verify-full&sslrootcert={ca_path}"
    config = {**postgres_db.config, "connection_string": string, "ssl_mode": "prefer"}
    PostgresConnector().validate(config)
    with postgres.connection_params(config) as params:
        assert params["sslmode"] == "verify-full" and params["sslrootcert"] == str(ca_path)
    with postgres.connection_params(
        {**postgres_db.config, "ssl_mode": "disable", "connection_string": "sslmode=require"}
    ) as params:
        assert params["sslmode"] == "require"


@pytest.mark.postgres
def test_postgres_require_tls_through_the_tunnel_encrypts_and_verifies(
    postgres_db: Database, tls_ca: str, bastion: Bastion
) -> None:
    config = {
        **postgres_db.config,
        "ssl_mode": "disable",
        "ssh_tunnel": bastion.tunnel(require_tls={"enabled": True}),
    }
    assert _pg_ssl(config)
    full = {**config, "ssl_mode": "verify-full", "ssl_ca": tls_ca}
    PostgresConnector().validate(full)
    with pytest.raises(SourceError) as caught:
        PostgresConnector().validate({**full, "ssl_ca": _other_ca()})
    assert f"through SSH host 127.0.0.1:{bastion.port}" in str(caught.value)
    assert "certificate verify failed" in str(caught.value)


@pytest.mark.mysql
@pytest.mark.parametrize(
    ("choice", "encrypted"),
    [
        ({}, True),
        ({"using_ssl": "true"}, True),
        ({"using_ssl": "false"}, False),
        ({"using_ssl": False}, False),
    ],
)
def test_mysql_tls_choices(mysql_db: Database, tls_ca: str, choice: dict, encrypted: bool) -> None:
    config = {**mysql_db.config, **choice}
    if not choice:
        del config["using_ssl"]  # the form's default is "true"
    MySQLConnector().validate(config)
    assert bool(_my_cipher(config)) is encrypted


@pytest.mark.mysql
@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_mysql_verifies_the_server_against_the_given_ca(mysql_db: Database, tls_ca: str, mode: str) -> None:
    config = {**mysql_db.config, "using_ssl": "true", "ssl_mode": mode, "ssl_ca": tls_ca}
    MySQLConnector().validate(config)
    assert _my_cipher(config)
    with pytest.raises(SourceError) as caught:
        MySQLConnector().validate({**config, "ssl_ca": _other_ca()})
    assert str(caught.value).startswith("Could not connect to 127.0.0.1:3306: the server's TLS certificate")


@pytest.mark.mysql
def test_mysql_verify_full_checks_the_host_name_and_require_tls_forces_tls(
    mysql_db: Database, tls_ca: str, bastion: Bastion
) -> None:
    config = {**mysql_db.config, "using_ssl": "true", "ssl_mode": "verify-full", "ssl_ca": tls_ca}
    MySQLConnector().validate({**config, "host": "localhost"})
    # db.example.com reached at 127.0.0.1 (as a tunnel reaches it): the certificate does not name it
    renamed = mysql._target({**config, "host": "db.example.com"})
    with pytest.raises(SourceError, match="TLS certificate was not accepted"):
        mysql._connect(renamed, ("127.0.0.1", 3306))
    mysql._connect(
        mysql._target({**config, "host": "db.example.com", "ssl_mode": "verify-ca"}), ("127.0.0.1", 3306)
    ).close()
    tunnelled = {
        **mysql_db.config,
        "using_ssl": "false",
        "ssh_tunnel": bastion.tunnel(require_tls={"enabled": True}),
    }
    assert _my_cipher_through(tunnelled)
    MySQLConnector().validate({**tunnelled, "using_ssl": "true", "ssl_mode": "verify-full", "ssl_ca": tls_ca})


def _my_cipher_through(config: dict) -> str:
    with mysql.connection_args(config) as args:
        host, port = args.pop("address")
        connection = pymysql.connect(**args, defer_connect=True)
        import socket

        connection.connect(socket.create_connection((host, port), 5))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = cursor.fetchone()
        finally:
            connection.close()
    assert row is not None
    return str(row[1])


def test_a_ca_that_is_not_pem_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="The CA certificate must be PEM text"):
        postgres._target({"host": "h", "ssl_mode": "verify-full", "ssl_ca": "not a certificate"})
    with pytest.raises(SourceError, match="TLS mode must be one of: disable, allow, prefer, require"):
        postgres._target({"host": "h", "ssl_mode": "sometimes"})
