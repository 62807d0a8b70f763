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

import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "database": "test"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}

# A password-checked role on both servers (tools/prepare_services.sh creates it): sources in tests
# connect as this user, so wrong passwords really fail, and the password doubles as the canary
# that must never leave the vault.
SECURE_USER = "wmcp_secure"
CANARY_PASSWORD = "wmcp-canary-5e1f0b9d"


def _unavailable(service: str, error: Exception) -> None:
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
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


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


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty data directory for the embedded backend."""
    path = tmp_path / "home"
    path.mkdir()
    return path
