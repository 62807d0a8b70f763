"""Merging a PATCHed job_inputs over the stored config: secrets kept, never sent to a new target."""

from __future__ import annotations

from typing import Any

import pytest

from warehouse_mcp.embedded.domain.errors import DomainError
from warehouse_mcp.embedded.domain.job_inputs_update import merge_job_inputs
from warehouse_mcp.embedded.http.errors import domain_answer

PG: dict[str, Any] = {
    "host": "db.example.com",
    "port": 5432,
    "database": "app",
    "user": "reader",
    "password": "s3cret",
    "schema": "public",
    "ssh_tunnel": {
        "enabled": True,
        "host": "bastion.example.com",
        "port": 22,
        "auth": {"selection": "password", "username": "jump", "password": "tunnel-pw"},
    },
}


def refused(source_type: str, existing: dict[str, Any], incoming: dict[str, Any]) -> str:
    with pytest.raises(DomainError) as caught:
        merge_job_inputs(source_type, existing, incoming)
    answer = domain_answer(caught.value)
    assert answer.status == 400 and answer.body["type"] == "validation_error"
    return str(answer.body["detail"])


def test_an_omitted_or_empty_secret_keeps_the_stored_one() -> None:
    assert merge_job_inputs("Postgres", PG, {"schema": "sales"})["password"] == "s3cret"
    assert merge_job_inputs("Postgres", PG, {"password": ""})["password"] == "s3cret"
    assert merge_job_inputs("Postgres", PG, {"password": "new"})["password"] == "new"


def test_a_new_host_needs_the_password_again() -> None:
    assert (
        refused("Postgres", PG, {"host": "evil.example.com"})
        == "Changing the connection host requires re-entering your credentials."
    )
    merged = merge_job_inputs("Postgres", PG, {"host": "new.example.com", "password": "again"})
    assert merged["host"] == "new.example.com" and merged["password"] == "again"
    assert merge_job_inputs("Postgres", PG, {"host": "db.example.com"})["password"] == "s3cret", "same host"


@pytest.mark.parametrize(
    "tunnel",
    [
        {**PG["ssh_tunnel"], "enabled": False},
        {**PG["ssh_tunnel"], "port": 2222},
        {**PG["ssh_tunnel"], "host": "other-bastion.example.com"},
    ],
)
def test_a_new_tunnel_target_needs_the_database_password_again(tunnel: dict[str, Any]) -> None:
    assert (
        refused("Postgres", PG, {"ssh_tunnel": tunnel})
        == "Changing the SSH tunnel requires re-entering your database credentials."
    )


def test_tunnel_values_of_another_type_are_not_a_change() -> None:
    tunnel = {**PG["ssh_tunnel"], "enabled": "True", "port": "22"}
    assert merge_job_inputs("Postgres", PG, {"ssh_tunnel": tunnel})["password"] == "s3cret"


def test_a_new_tunnel_host_needs_the_tunnel_credentials_again() -> None:
    tunnel = {"host": "other-bastion.example.com", "enabled": True, "port": 22}
    assert (
        refused("Postgres", PG, {"password": "db-pw", "ssh_tunnel": tunnel})
        == "Changing the SSH tunnel host requires re-entering your SSH credentials."
    )
    merged = merge_job_inputs(
        "Postgres",
        PG,
        {
            "password": "db-pw",
            "ssh_tunnel": {**tunnel, "auth": {"selection": "password", "username": "jump"}},
        },
    )
    assert "password" not in merged["ssh_tunnel"]["auth"], (
        "the old tunnel password is not sent to the new host"
    )


def test_the_tunnel_is_merged_deeply() -> None:
    merged = merge_job_inputs(
        "Postgres", PG, {"ssh_tunnel": {**PG["ssh_tunnel"], "auth": {"username": "jump2"}}}
    )
    assert merged["ssh_tunnel"]["auth"] == {"username": "jump2", "password": "tunnel-pw"}
    merged = merge_job_inputs(
        "Postgres", PG, {"ssh_tunnel": {"enabled": True, "host": "bastion.example.com", "port": 22}}
    )
    assert merged["ssh_tunnel"]["auth"]["password"] == "tunnel-pw"


SNOWFLAKE: dict[str, Any] = {
    "account_id": "xy123",
    "database": "db",
    "warehouse": "wh",
    "schema": "public",
    "auth_type": {"selection": "password", "user": "u", "password": "pw"},
}


def test_nested_auth_containers_keep_their_secret_or_drop_it_on_a_new_selection() -> None:
    same = merge_job_inputs("Snowflake", SNOWFLAKE, {"auth_type": {"selection": "password", "user": "v"}})
    assert same["auth_type"] == {"selection": "password", "user": "v", "password": "pw"}
    switched = merge_job_inputs(
        "Snowflake", SNOWFLAKE, {"auth_type": {"selection": "keypair", "user": "v", "private_key": "k"}}
    )
    assert switched["auth_type"] == {"selection": "keypair", "user": "v", "private_key": "k"}


def test_a_pinned_host_key_stays_with_its_bastion_only() -> None:
    pinned = {**PG, "ssh_tunnel": {**PG["ssh_tunnel"], "host_key_fingerprint": "SHA256:" + "A" * 43}}
    same = merge_job_inputs(
        "Postgres", pinned, {"ssh_tunnel": {"enabled": True, "host": "bastion.example.com", "port": 22}}
    )
    assert same["ssh_tunnel"]["host_key_fingerprint"] == "SHA256:" + "A" * 43
    auth = {"selection": "password", "username": "jump", "password": "pw"}
    moved = merge_job_inputs(
        "Postgres",
        pinned,
        {
            "password": "db-pw",
            "ssh_tunnel": {"enabled": True, "host": "new-bastion", "port": 22, "auth": auth},
        },
    )
    assert "host_key_fingerprint" not in moved["ssh_tunnel"]  # trusted on first use again
    repinned = merge_job_inputs(
        "Postgres",
        pinned,
        {
            "password": "db-pw",
            "ssh_tunnel": {
                "enabled": True,
                "host": "new-bastion",
                "auth": auth,
                "host_key_fingerprint": "SHA256:x",
            },
        },
    )
    assert repinned["ssh_tunnel"]["host_key_fingerprint"] == "SHA256:x"
