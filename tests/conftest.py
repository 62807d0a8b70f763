"""Shared fixtures: real PostgreSQL and MariaDB databases, fresh per test.

The services are on 127.0.0.1 (postgres/trust and root/empty password). Under CI (`CI=true`) a missing
service fails the test loudly; on a developer laptop it skips with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "database": "test"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}

# A password-checked role on both servers (tools/prepare_services.sh creates it): sources in tests
# connect as this user, so wrong passwords really fail, and the password doubles as the canary
# that must never leave the vault.
SECURE_USER = "wmcp_secure"
CANARY_PASSWORD = "wmcp-canary-5e1f0b9d"


# Made by tools/prepare_services.sh: TLS certificates for both servers, an sshd on loopback and its users.
SERVICES_DIR = Path(os.environ.get("WMCP_TEST_SERVICES", "/var/lib/wmcp-test-services"))
SSH_PORT = 22022
SSH_USER = "wmcp_tunnel"
SSH_PASSWORD = "wmcp-tunnel-canary-7c3a91e2"
SSH_KEY_PASSPHRASE = "wmcp-passphrase-canary-4d2e8b61"


def _unavailable(service: str, error: Exception | str) -> None:
    reason = f"{service} is not reachable on 127.0.0.1 ({error}); start it (see README, 'Tests')"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Database:
    """A throwaway database on a real server; `config` is the job_inputs a source would use."""

    kind: str
    name: str
    config: dict

    def execute(self, *statements: str) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(**_pg_args(self.name), autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)  # type: ignore[arg-type]
        else:
            import pymysql

            conn = pymysql.connect(**_my_args(self.name), autocommit=True)
            try:
                with conn.cursor() as cur:
                    for statement in statements:
                        cur.execute(statement)
            finally:
                conn.close()

    def fetch(self, sql: str) -> list[tuple]:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(**_pg_args(self.name)) as conn:
                return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]
        import pymysql

        conn = pymysql.connect(**_my_args(self.name))
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()


def _pg_args(dbname: str) -> dict:
    return {
        "host": PG["host"],
        "port": PG["port"],
        "user": PG["user"],
        "dbname": dbname,
        "connect_timeout": 5,
    }


def _my_args(dbname: str | None) -> dict:
    args = {"host": MY["host"], "port": MY["port"], "user": MY["user"], "password": "", "connect_timeout": 5}
    if dbname:
        args["database"] = dbname
    return args


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    """A fresh, empty Postgres database, dropped afterwards."""
    with fresh_postgres() as database:
        yield database


@pytest.fixture
def mysql_db() -> Iterator[Database]:
    """A fresh, empty MariaDB database, dropped afterwards."""
    with fresh_mysql() as database:
        yield database


@contextmanager
def fresh_postgres() -> Iterator[Database]:
    """A fresh, empty Postgres database, dropped afterwards (for fixtures of any scope)."""
    psycopg = pytest.importorskip("psycopg")
    name = f"wmcp_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(**_pg_args("postgres"), autocommit=True)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    config = {
        "host": PG["host"],
        "port": PG["port"],
        "database": name,
        "user": SECURE_USER,
        "password": CANARY_PASSWORD,
        "schema": "public",
    }
    try:
        yield Database("postgres", name, config)
    finally:
        with psycopg.connect(**_pg_args("postgres"), autocommit=True) as admin:
            drop_replication_slots(admin, name)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def drop_replication_slots(admin: Any, database: str) -> None:
    """Drop the CDC slots a test left in its database: a slot blocks DROP DATABASE and, left behind, keeps
    WAL for every database on the server. (The CDC tests check that the backend itself leaves none.)"""
    for (pid,) in admin.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE database = %s AND active_pid IS NOT NULL",
        (database,),
    ).fetchall():
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s AND NOT temporary",
        (database,),
    )


@contextmanager
def fresh_mysql() -> Iterator[Database]:
    """A fresh, empty MariaDB database, dropped afterwards (for fixtures of any scope)."""
    pymysql = pytest.importorskip("pymysql")
    name = f"wmcp_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**_my_args(None), autocommit=True)
    except pymysql.err.OperationalError as exc:
        _unavailable("MariaDB", exc)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        admin.close()
    config = {
        "host": MY["host"],
        "port": MY["port"],
        "database": name,
        "user": SECURE_USER,
        "password": CANARY_PASSWORD,
        "schema": name,
        "using_ssl": "false",
    }
    try:
        yield Database("mysql", name, config)
    finally:
        admin = pymysql.connect(**_my_args(None), autocommit=True)
        try:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()


@dataclass(frozen=True)
class Bastion:
    """The loopback SSH server the tunnel tests connect through."""

    host: str
    port: int
    user: str
    password: str
    private_key: str  # without a passphrase
    encrypted_key: str  # needs `passphrase`
    passphrase: str
    fingerprint: str  # SHA256:... of the server's host key

    def tunnel(self, method: str = "keypair", **extra: object) -> dict:
        """An `ssh_tunnel` config value as the connect page posts it."""
        auth: dict[str, object] = {"selection": method, "username": self.user}
        if method == "password":
            auth["password"] = self.password
        else:
            auth["private_key"] = self.private_key
        tunnel: dict[str, object] = {"enabled": True, "host": self.host, "port": self.port, "auth": auth}
        tunnel.update(extra)
        return tunnel


@pytest.fixture(scope="session")
def bastion() -> Bastion:
    """The sshd on 127.0.0.1:22022 made by tools/prepare_services.sh (skips/fails when it is missing)."""
    asyncssh = pytest.importorskip("asyncssh")
    ssh_dir = SERVICES_DIR / "ssh"
    try:
        with socket.create_connection(("127.0.0.1", SSH_PORT), timeout=2) as sock:
            banner = sock.recv(64)
        if not banner.startswith(b"SSH-"):
            raise OSError(f"port {SSH_PORT} does not answer as SSH")
        host_key = asyncssh.read_public_key(ssh_dir / "host_ed25519_key.pub")
        private_key = (ssh_dir / "client_ed25519").read_text()
        encrypted_key = (ssh_dir / "client_rsa_passphrase").read_text()
    except OSError as exc:
        _unavailable(f"The test sshd (tools/prepare_services.sh, port {SSH_PORT})", exc)
    return Bastion(
        host="127.0.0.1",
        port=SSH_PORT,
        user=SSH_USER,
        password=SSH_PASSWORD,
        private_key=private_key,
        encrypted_key=encrypted_key,
        passphrase=SSH_KEY_PASSPHRASE,
        fingerprint=host_key.get_fingerprint("sha256").rstrip("="),
    )


@pytest.fixture(scope="session")
def tls_ca() -> str:
    """The PEM of the CA that signed the local servers' TLS certificates (tools/prepare_services.sh)."""
    path = SERVICES_DIR / "tls" / "ca.crt"
    if not path.is_file():
        _unavailable("TLS on PostgreSQL/MariaDB", f"no test CA at {path}")
    with fresh_postgres() as pg:
        if pg.fetch("SHOW ssl") != [("on",)]:
            _unavailable("TLS on PostgreSQL", "ssl is off")
    with fresh_mysql() as my:
        if my.fetch("SHOW VARIABLES LIKE 'have_ssl'") != [("have_ssl", "YES")]:
            _unavailable("TLS on MariaDB", "have_ssl is not YES")
    return path.read_text()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty data directory for the embedded backend."""
    path = tmp_path / "home"
    path.mkdir()
    return path
