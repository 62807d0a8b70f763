"""From the wizard forms to HTML inputs and back to a source config (no server needed)."""

from __future__ import annotations

import json
import re

import pytest

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.http.connect_page import OAUTH_NOTE, collect, render_fields

KEY_FILE = {
    "type": "service_account",
    "project_id": "proj",
    "private_key": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
    "private_key_id": "kid",
    "client_email": "svc@proj.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def fields_of(source_type: str) -> list[dict]:
    definition = registry.form(source_type)
    assert definition is not None
    return list(definition["fields"])


def test_a_select_gives_its_value_and_only_the_chosen_options_fields() -> None:
    posted = {
        "auth_method.selection": "api_key",
        "auth_method:api_key.stripe_secret_key": "rk_live_abc123",
        "stripe_account_id": "  ",
    }
    submission = collect(fields_of("Stripe"), posted)
    assert submission.errors == []
    assert submission.config == {"auth_method": "api_key", "stripe_secret_key": "rk_live_abc123"}
    assert submission.secret_values == ["rk_live_abc123"]
    forms.validate_config("Stripe", submission.config)


def test_choosing_oauth_says_it_needs_a_posthog_backend() -> None:
    stripe = collect(fields_of("Stripe"), {"auth_method.selection": "oauth"})
    assert any(OAUTH_NOTE in error for error in stripe.errors)
    hubspot = collect(fields_of("Hubspot"), {})
    assert any(OAUTH_NOTE in error for error in hubspot.errors)


def test_numbers_become_ints_and_selects_keep_their_values() -> None:
    posted = {
        "host": " db ",
        "port": "3306",
        "database": "d",
        "user": "u",
        "password": " p ",
        "using_ssl.selection": "false",  # a select whose options have fields posts `.selection`
    }
    submission = collect(fields_of("MySQL"), posted)
    assert submission.errors == []
    assert submission.config == {
        "host": "db",
        "port": 3306,
        "database": "d",
        "user": "u",
        "password": " p ",  # secrets are kept byte for byte
        "using_ssl": "false",
        "ssh_tunnel": {"enabled": False},
    }
    assert collect(fields_of("MySQL"), {**posted, "port": "33.06"}).errors == ["Port must be a whole number."]
    bad_choice = collect(fields_of("MySQL"), {**posted, "using_ssl.selection": "maybe"})
    assert bad_choice.errors == ["Choose one of the listed options for Use SSL?."]
    defaults = collect(fields_of("MySQL"), {k: v for k, v in posted.items() if k != "using_ssl.selection"})
    assert (defaults.config["using_ssl"], defaults.config["ssl_mode"]) == ("true", "require")
    verified = collect(
        fields_of("MySQL"),
        {
            **posted,
            "using_ssl.selection": "true",
            "using_ssl:true.ssl_mode.selection": "verify-full",
            "using_ssl:true.ssl_mode:verify-full.ssl_ca": "-----BEGIN CERTIFICATE-----\nMIIB\n",
        },
    )
    assert verified.errors == []
    assert (verified.config["ssl_mode"], verified.config["ssl_ca"]) == (
        "verify-full",
        "-----BEGIN CERTIFICATE-----\nMIIB",
    )


def test_an_ssh_tunnel_takes_its_nested_shape_with_the_chosen_auth_only() -> None:
    posted = {
        "ssh_tunnel.enabled": "on",
        "ssh_tunnel.host": "bastion",
        "ssh_tunnel.port": "2222",
        "ssh_tunnel.auth.selection": "keypair",
        "ssh_tunnel.auth.username": "me",
        "ssh_tunnel.auth.password.password": "not-this-one",
        "ssh_tunnel.auth.keypair.private_key": "-----BEGIN KEY-----",
        "ssh_tunnel.auth.keypair.passphrase": "phrase",
    }
    submission = collect(fields_of("Postgres"), posted)
    assert submission.config["ssh_tunnel"] == {
        "enabled": True,
        "host": "bastion",
        "port": 2222,
        "auth": {
            "selection": "keypair",
            "username": "me",
            "private_key": "-----BEGIN KEY-----",
            "passphrase": "phrase",
        },
        "require_tls": {"enabled": False},
    }
    assert "ssh_tunnel.auth.password.password" in submission.secret_names
    assert collect(fields_of("Postgres"), {"ssh_tunnel.host": "bastion"}).config["ssh_tunnel"] == {
        "enabled": False
    }


def test_a_key_file_and_switch_groups() -> None:
    posted = {
        "key_file": json.dumps(KEY_FILE),
        "dataset_id": "ds",
        "temporary-dataset.enabled": "on",
        "temporary-dataset.temporary_dataset_id": "tmp",
        "dataset_project.dataset_project_id": "ignored while off",
    }
    submission = collect(fields_of("BigQuery"), posted)
    assert submission.errors == []
    assert submission.config["key_file"] == {k: v for k, v in KEY_FILE.items() if k != "type"}
    assert submission.config["temporary-dataset"] == {"enabled": True, "temporary_dataset_id": "tmp"}
    assert submission.config["dataset_project"] == {"enabled": False}
    forms.validate_config("BigQuery", submission.config)

    assert collect(fields_of("BigQuery"), {**posted, "key_file": "{not json"}).errors == [
        "Google Cloud JSON key file must be the contents of a JSON key file."
    ]
    partial = json.dumps({"project_id": "p"})
    assert collect(fields_of("BigQuery"), {**posted, "key_file": partial}).errors == [
        "Google Cloud JSON key file is missing: private_key, private_key_id, client_email, token_uri."
    ]


@pytest.mark.parametrize("source_type", registry.SOURCE_TYPES)
def test_every_form_renders_with_a_label_for_every_input(source_type: str) -> None:
    markup = render_fields(fields_of(source_type))
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', markup)
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', markup))
    assert set(ids) <= labelled
    assert len(ids) == len(set(ids))
    assert ids or OAUTH_NOTE in markup  # an OAuth-only form has nothing to type, only the note


def test_all_option_fields_are_rendered_for_browsers_without_javascript() -> None:
    markup = render_fields(fields_of("Stripe"))
    assert '<fieldset class="option" data-select="f-auth_method-selection" data-value="api_key">' in markup
    assert "<legend>Restricted API key</legend>" in markup
    assert "<legend>OAuth connection</legend>" in markup and OAUTH_NOTE in markup
    postgres = render_fields(fields_of("Postgres"))
    for name in (
        "ssh_tunnel.host",
        "ssh_tunnel.auth.password.password",
        "ssh_tunnel.auth.keypair.private_key",
    ):
        assert f'name="{name}"' in postgres


def test_a_re_render_shows_public_values_and_never_secrets() -> None:
    shown = {
        "host": "db.internal",
        "port": "5432",
        "password": "hunter2-secret",
        "connection_string": "postgresql://u:hunter2-secret@h/d",
        "ssh_tunnel.enabled": "on",
        "ssh_tunnel.auth.selection": "keypair",
        "ssh_tunnel.auth.keypair.private_key": "PRIVATE-KEY-BODY",
    }
    markup = render_fields(fields_of("Postgres"), shown, submitted=True)
    assert 'value="db.internal"' in markup and 'value="5432"' in markup
    assert "hunter2-secret" not in markup and "PRIVATE-KEY-BODY" not in markup
    assert re.search(r'name="ssh_tunnel.enabled"[^>]*checked', markup)
    assert '<option value="keypair" selected>' in markup
    bigquery = render_fields(fields_of("BigQuery"), {"key_file": json.dumps(KEY_FILE)}, submitted=True)
    assert "BEGIN PRIVATE KEY" not in bigquery


def test_messages_never_echo_a_submitted_secret() -> None:
    from warehouse_mcp.embedded.http.connect_page import _scrub

    message = 'could not connect to "db" as sekret-pass-99 (password sekret-pass-99)'
    assert (
        _scrub(message, ["sekret-pass-99", "ab"])
        == 'could not connect to "db" as [hidden] (password [hidden])'
    )


def test_the_tunnel_form_takes_a_pinned_fingerprint_and_the_success_page_shows_the_trusted_one() -> None:
    from warehouse_mcp.embedded.http.connect_page import _success_page

    fingerprint = "SHA256:" + "C" * 43
    posted = {
        "ssh_tunnel.enabled": "on",
        "ssh_tunnel.host": "bastion",
        "ssh_tunnel.host_key_fingerprint": f" {fingerprint} ",
        "ssh_tunnel.auth.selection": "password",
        "ssh_tunnel.auth.username": "me",
        "ssh_tunnel.auth.password.password": "pw",
    }
    tunnel = collect(fields_of("Postgres"), posted).config["ssh_tunnel"]
    assert tunnel["host_key_fingerprint"] == fingerprint and tunnel["port"] == 22
    assert 'name="ssh_tunnel.host_key_fingerprint"' in render_fields(fields_of("Postgres"))
    page = bytes(_success_page("Postgres", "cred-1", fingerprint).body).decode()
    assert f"SSH host key: <code>{fingerprint}</code>" in page
    assert "SSH host key" not in bytes(_success_page("Postgres", "cred-1").body).decode()
