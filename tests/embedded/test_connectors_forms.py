"""The wizard forms (registry) and what they decide about configs (forms): secrets, public view, validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import Connector
from warehouse_mcp.embedded.connectors.forms import ConfigError
from warehouse_mcp.models import SourceType

WIZARD_KEYS = {
    "name",
    "caption",
    "category",
    "iconPath",
    "docsUrl",
    "fields",
    "featured",
    "keywords",
    "label",
    "suggestedTables",
    "webhookFields",
    "unreleasedSource",
    "supportsColumnSelection",
}

POSTGRES_CONFIG = {
    "connection_string": "postgresql://app:conn-pw-1@db.internal:5432/shop",
    "host": "db.example.com",
    "port": 5432,
    "database": "shop",
    "user": "app",
    "password": "pg-secret-1",
    "schema": "public",
    "ssh_tunnel": {
        "enabled": True,
        "host": "bastion.example.com",
        "port": 22,
        "auth": {
            "selection": "keypair",
            "username": "tunnel",
            "password": "ssh-pw-1",
            "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----xyz",
            "passphrase": "ssh-phrase-1",
        },
        "require_tls": {"enabled": False},
    },
    "cdc_enabled": True,
    "cdc_slot_name": "posthog_abc",
    "stray_token": "unknown-1",
}


def _field(definition: dict, name: str) -> dict:
    return next(field for field in definition["fields"] if field["name"] == name)


# --- registry -----------------------------------------------------------------------------------


def test_every_source_type_has_a_wizard_entry_in_posthogs_shape() -> None:
    wizard = registry.wizard()
    assert set(wizard) == {member.value for member in SourceType} == set(registry.SOURCE_TYPES)
    for source_type, definition in wizard.items():
        assert set(definition) == WIZARD_KEYS, source_type
        assert definition["name"] == source_type
        assert definition["fields"], source_type
        for field in definition["fields"]:
            assert {"name", "label", "type"} <= set(field), (source_type, field)


def test_postgres_form_is_posthogs() -> None:
    postgres = registry.form("Postgres")
    assert postgres is not None
    assert postgres["category"] == "Databases" and postgres["featured"] is True
    assert [field["name"] for field in postgres["fields"]] == [
        "connection_string",
        "host",
        "port",
        "database",
        "user",
        "password",
        "schema",
        "ssl_mode",  # the embedded backend's addition: TLS choices, with a CA for the verify modes
        "ssh_tunnel",
    ]
    ssl_mode = _field(postgres, "ssl_mode")
    assert (ssl_mode["type"], ssl_mode["defaultValue"], ssl_mode["required"]) == ("select", "prefer", True)
    assert [option["value"] for option in ssl_mode["options"]] == [
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
        "disable",
    ]
    verify_full = next(option for option in ssl_mode["options"] if option["value"] == "verify-full")
    assert [(f["name"], f["type"], f["required"], f["secret"]) for f in verify_full["fields"]] == [
        ("ssl_ca", "textarea", False, False)
    ]
    tunnel = _field(postgres, "ssh_tunnel")
    assert (
        tunnel["authMethods"] == ["password", "keypair"]
        and "host_key_fingerprint" in tunnel["hostKeyFingerprint"]
    )
    connection_string = _field(postgres, "connection_string")
    assert (connection_string["type"], connection_string["required"], connection_string["secret"]) == (
        "text",
        False,
        True,
    )
    assert all(
        _field(postgres, name)["required"] for name in ("host", "port", "database", "user", "password")
    )
    assert _field(postgres, "port")["placeholder"] == "5432"
    password = _field(postgres, "password")
    assert (password["type"], password["secret"]) == ("password", True)
    assert (
        _field(postgres, "schema")["placeholder"] == "public" and not _field(postgres, "schema")["required"]
    )
    assert _field(postgres, "ssh_tunnel")["type"] == "ssh-tunnel"
    assert postgres["supportsColumnSelection"] is True


def test_mysql_stripe_hubspot_bigquery_forms() -> None:
    mysql = registry.form("MySQL")
    assert mysql is not None
    assert _field(mysql, "port")["placeholder"] == "3306"
    assert _field(mysql, "password")["required"] is False and _field(mysql, "password")["secret"] is True
    assert _field(mysql, "schema")["required"] is True
    ssl = _field(mysql, "using_ssl")
    assert ssl["type"] == "select" and ssl["defaultValue"] == "true"
    assert [option["value"] for option in ssl["options"]] == ["true", "false"]
    check = ssl["options"][0]["fields"][0]
    assert (check["name"], check["defaultValue"]) == ("ssl_mode", "require")
    assert [option["value"] for option in check["options"]] == ["require", "verify-ca", "verify-full"]

    stripe = registry.form("Stripe")
    assert stripe is not None
    options = {option["value"]: option["fields"][0] for option in _field(stripe, "auth_method")["options"]}
    assert options["api_key"]["name"] == "stripe_secret_key"
    assert (options["api_key"]["type"], options["api_key"]["placeholder"]) == ("password", "rk_live_...")
    assert options["oauth"] == {
        "name": "stripe_integration_id",
        "label": "Stripe account",
        "type": "oauth",
        "kind": "stripe",
        "required": False,
    }
    assert _field(stripe, "stripe_account_id")["required"] is False
    assert [field["name"] for field in stripe["webhookFields"]] == ["signing_secret"]
    assert stripe["webhookFields"][0]["placeholder"] == "whsec_..."
    assert [table["table"] for table in stripe["suggestedTables"]] == [
        "Customer",
        "Charge",
        "Invoice",
        "Subscription",
        "Product",
    ]

    hubspot = registry.form("Hubspot")
    assert hubspot is not None
    assert hubspot["fields"] == [
        {
            "name": "hubspot_integration_id",
            "label": "Hubspot account",
            "type": "oauth",
            "kind": "hubspot",
            "required": True,
        }
    ]
    bigquery = registry.form("BigQuery")
    assert bigquery is not None
    assert _field(bigquery, "key_file")["fileFormat"]["keys"] == [
        "project_id",
        "private_key",
        "private_key_id",
        "client_email",
        "token_uri",
    ]
    assert [field["type"] for field in bigquery["fields"]].count("switch-group") == 2


def test_wizard_answers_are_copies() -> None:
    registry.wizard()["Postgres"]["fields"].clear()
    form = registry.form("Postgres")
    assert form is not None and form["fields"]


def test_connector_for_runnable_types() -> None:
    connector = registry.connector_for("Postgres")
    assert isinstance(connector, Connector) and connector.source_type == "Postgres"
    assert registry.connector_for("MySQL").source_type == "MySQL"
    assert registry.connector_for("Stripe").source_type == "Stripe"
    assert registry.RUNNABLE_TYPES == ("Postgres", "MySQL", "Stripe")


@pytest.mark.parametrize("source_type", ["Hubspot", "Snowflake", "BigQuery"])
def test_connector_for_a_type_only_posthog_runs(source_type: str) -> None:
    with pytest.raises(registry.UnsupportedSource) as raised:
        registry.connector_for(source_type)
    message = str(raised.value)
    assert source_type in message and "PostHog backend" in message
    assert all(runnable in message for runnable in registry.RUNNABLE_TYPES)


def test_unknown_source_type() -> None:
    assert not registry.is_known("Nope") and registry.form("Nope") is None
    with pytest.raises(registry.UnsupportedSource, match="Unknown source type 'Nope'"):
        registry.connector_for("Nope")


def test_registry_imports_nothing_heavy() -> None:
    code = (
        "import sys; import warehouse_mcp.embedded.connectors.registry as r; import warehouse_mcp.embedded.connectors.forms;"
        "r.wizard(); print(sorted(m for m in ('psycopg', 'pymysql', 'pyarrow', 'duckdb') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- secrets ------------------------------------------------------------------------------------------


def test_split_and_merge_round_trip_keeps_the_nested_shape() -> None:
    public, secret = forms.split_secrets("Postgres", POSTGRES_CONFIG)
    assert forms.merge_secrets(public, secret) == POSTGRES_CONFIG
    assert public == {
        "host": "db.example.com",
        "port": 5432,
        "database": "shop",
        "user": "app",
        "schema": "public",
        "ssh_tunnel": {
            "enabled": True,
            "host": "bastion.example.com",
            "port": 22,
            "auth": {"selection": "keypair", "username": "tunnel"},
            "require_tls": {"enabled": False},
        },
        "cdc_enabled": True,
        "cdc_slot_name": "posthog_abc",
    }
    assert secret == {
        "connection_string": POSTGRES_CONFIG["connection_string"],
        "password": "pg-secret-1",
        "ssh_tunnel": {
            "auth": {
                "password": "ssh-pw-1",
                "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----xyz",
                "passphrase": "ssh-phrase-1",
            }
        },
        "stray_token": "unknown-1",  # unknown keys are never stored in plain text
    }


def test_public_job_inputs_drops_secrets_and_unknown_keys() -> None:
    public = forms.public_job_inputs("Postgres", POSTGRES_CONFIG)
    text = repr(public)
    for secret in ("pg-secret-1", "conn-pw-1", "ssh-pw-1", "ssh-phrase-1", "PRIVATE KEY", "unknown-1"):
        assert secret not in text
    assert public["ssh_tunnel"]["auth"] == {"selection": "keypair", "username": "tunnel"}
    assert public["cdc_slot_name"] == "posthog_abc"
    assert forms.public_job_inputs("Nope", POSTGRES_CONFIG) == {}
    assert forms.public_job_inputs("Postgres", None) == {}


def test_stripe_secret_is_found_nested_or_flat() -> None:
    nested = {
        "auth_method": {"selection": "api_key", "stripe_secret_key": "rk_live_abc"},
        "stripe_account_id": "acct_1",
    }
    assert forms.public_job_inputs("Stripe", nested) == {
        "auth_method": {"selection": "api_key"},
        "stripe_account_id": "acct_1",
    }
    flat = {"stripe_secret_key": "rk_live_abc", "stripe_account_id": "acct_1", "signing_secret": "whsec_1"}
    public, secret = forms.split_secrets("Stripe", flat)
    assert public == {"stripe_account_id": "acct_1"}
    assert secret == {"stripe_secret_key": "rk_live_abc", "signing_secret": "whsec_1"}


def test_file_upload_is_wholly_secret_and_switch_groups_are_recursed() -> None:
    config = {
        "key_file": {"project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----", "client_email": "a@b"},
        "dataset_id": "analytics",
        "temporary-dataset": {"enabled": True, "temporary_dataset_id": "tmp"},
    }
    public, secret = forms.split_secrets("BigQuery", config)
    assert public == {
        "dataset_id": "analytics",
        "temporary-dataset": {"enabled": True, "temporary_dataset_id": "tmp"},
    }
    assert secret == {"key_file": config["key_file"]}
    assert ("key_file",) in forms.sensitive_paths("BigQuery")
    assert forms.is_sensitive_key("BigQuery", ("key_file", "project_id"))


def test_sensitive_paths_and_keys() -> None:
    paths = forms.sensitive_paths("Postgres")
    for path in [
        ("connection_string",),
        ("password",),
        ("ssh_tunnel", "auth", "password"),
        ("ssh_tunnel", "auth", "private_key"),
        ("ssh_tunnel", "auth", "passphrase"),
    ]:
        assert path in paths
    assert ("host",) not in paths
    assert {("auth_method", "stripe_secret_key"), ("stripe_secret_key",), ("signing_secret",)} <= set(
        forms.sensitive_paths("Stripe")
    )
    assert forms.is_sensitive_key("Postgres", "password")
    assert forms.is_sensitive_key("Postgres", "ssh_tunnel.auth.private_key")
    assert not forms.is_sensitive_key("Postgres", "host")
    assert not forms.is_sensitive_key("Postgres", ("ssh_tunnel", "auth", "username"))
    assert forms.sensitive_paths("Nope") == [] and not forms.is_sensitive_key("Nope", "password")


def test_secret_values_include_the_connection_string_password() -> None:
    values = forms.secret_values("Postgres", POSTGRES_CONFIG)
    for secret in (
        "pg-secret-1",
        "conn-pw-1",
        POSTGRES_CONFIG["connection_string"],
        "ssh-pw-1",
        "ssh-phrase-1",
    ):
        assert secret in values
    assert "db.example.com" not in values and "unknown-1" not in values
    assert values == sorted(values, key=lambda value: (-len(value), value))
    assert forms.secret_values("Postgres", {"password": "", "host": "h"}) == []
    keyword = forms.secret_values("Postgres", {"connection_string": "host=h password='it''s' user=u"})
    assert forms.connection_string_password("host=h password=plain user=u") == "plain"
    assert len(keyword) == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.dictionaries(
        st.sampled_from(["host", "password", "auth", "x", "enabled"]), children, max_size=4
    ),
    max_leaves=12,
)


def _keys(data: object) -> set[str]:
    if not isinstance(data, dict):
        return set()
    return set(data) | {key for value in data.values() for key in _keys(value)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*POSTGRES_CONFIG, "other"]), json_values, max_size=8))
def test_split_then_merge_is_lossless(config: dict) -> None:
    public, secret = forms.split_secrets("Postgres", config)
    assert forms.merge_secrets(public, secret) == config
    assert not _keys(public) & {"password", "connection_string", "other", "x", "stray_token"}


# --- validation ---------------------------------------------------------------------------------------

PG_OK = {"host": "h", "port": 5432, "database": "d", "user": "u", "password": "p", "schema": "public"}


def test_valid_configs_pass() -> None:
    forms.validate_config("Postgres", PG_OK)
    forms.validate_config(
        "MySQL",
        {"host": "h", "port": "3306", "database": "d", "user": "u", "schema": "d", "using_ssl": "false"},
    )
    forms.validate_config("Stripe", {"stripe_secret_key": "rk_live_1"})
    forms.validate_config(
        "Stripe", {"auth_method": {"selection": "api_key", "stripe_secret_key": "rk_live_1"}}
    )
    forms.validate_config("Stripe", {"auth_method": {"selection": "oauth", "stripe_integration_id": 4}})


@pytest.mark.parametrize(
    ("source_type", "config", "message"),
    [
        ("Postgres", {**PG_OK, "host": None}, "Invalid source config: Required field 'host' is missing"),
        (
            "Postgres",
            {k: v for k, v in PG_OK.items() if k != "user"},
            "Invalid source config: Required field 'user' is missing",
        ),
        (
            "Postgres",
            {**PG_OK, "password": "  "},
            "Invalid source config: Required field 'password' is missing",
        ),
        ("Postgres", {**PG_OK, "port": "fifty"}, "Invalid source config: Field 'port' must be a number"),
        (
            "MySQL",
            {"host": "h", "port": 3306, "database": "d", "user": "u"},
            "Invalid source config: Required field 'schema' is missing",
        ),
        (
            "MySQL",
            {"host": "h", "port": 3306, "database": "d", "user": "u", "schema": "d", "using_ssl": "maybe"},
            "Invalid source config: Field 'using_ssl' must be one of: true, false",
        ),
        ("Stripe", {}, "Invalid source config: Required field 'stripe_secret_key' is missing"),
        (
            "BigQuery",
            {"key_file": {"project_id": "p"}, "dataset_id": "x"},
            "Invalid source config: Field 'key_file' is missing keys: private_key, private_key_id, client_email, token_uri",
        ),
        (
            "BigQuery",
            {
                "key_file": dict.fromkeys(
                    ["project_id", "private_key", "private_key_id", "client_email", "token_uri"], "v"
                ),
                "dataset_id": "x",
                "dataset_project": {"enabled": True, "dataset_project_id": ""},
            },
            "Invalid source config: Required field 'dataset_project_id' is missing",
        ),
        (
            "Postgres",
            {**PG_OK, "ssh_tunnel": {"enabled": True, "port": 22, "auth": {"username": "u"}}},
            "Invalid source config: Required field 'ssh_tunnel.host' is missing",
        ),
        ("Hubspot", {}, "Invalid source config: Required field 'hubspot_integration_id' is missing"),
        ("Nope", {}, "Invalid source config: Unknown source type 'Nope'"),
    ],
)
def test_invalid_configs_name_the_field(source_type: str, config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        forms.validate_config(source_type, config)
    assert str(raised.value) == message


def test_postgres_connection_string_replaces_the_connection_fields() -> None:
    forms.validate_config("Postgres", {"connection_string": "postgresql://u:pw@h:5432/d"})
    forms.validate_config("Postgres", {"connection_string": "host=h dbname=d user=u password=pw"})
    with pytest.raises(ConfigError) as raised:
        forms.validate_config("Postgres", {"connection_string": "host=h password=hunter2-secret bogus"})
    assert "hunter2-secret" not in str(raised.value)
    assert str(raised.value).startswith("Invalid source config: connection_string is not a valid")
    # A disabled SSH tunnel needs nothing else.
    forms.validate_config("Postgres", {**PG_OK, "ssh_tunnel": {"enabled": False}})
