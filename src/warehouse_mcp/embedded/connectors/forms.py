"""A source's config read through its wizard form: which keys are secret, what the API may show, and
whether the required fields are there.

Sensitivity follows PostHog (api-semantics §1): `password` fields, fields with `secret: true` and
`file-upload` fields are sensitive; `select` options, `switch-group`, `oauth` and `ssh-tunnel` fields
are recursed into. Like PostHog, classification is by key name at any depth (a select option's field
may be stored flat or under the select's name, e.g. Stripe's `auth_method: {selection, stripe_secret_key}`).
Keys the form does not declare are unknown: the API never shows them, and `split_secrets` keeps them
in the encrypted part, since nothing says they are safe to store in plain text.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from warehouse_mcp.embedded.connectors import form_fields, registry
from warehouse_mcp.embedded.connectors.connection_strings import connection_string_password
from warehouse_mcp.embedded.connectors.form_fields import FormField

# SSH tunnel values are not declared field by field in the form (PostHog's SSHTunnel config); the
# bastion's host key fingerprint (pinned, or trusted on first use) is public and shown.
SSH_TUNNEL_PUBLIC_KEYS = frozenset(
    {"host", "port", "username", "auth", "auth_type", "require_tls", "host_key_fingerprint"}
)
SSH_TUNNEL_SECRET_KEYS = frozenset({"password", "passphrase", "private_key"})
# Config metadata and CDC settings: shown in API answers whatever the form says.
ALWAYS_KEPT_KEYS = frozenset(
    {
        "selection",
        "enabled",
        "cdc_enabled",
        "cdc_management_mode",
        "cdc_slot_name",
        "cdc_publication_name",
        "cdc_auto_drop_slot",
        "cdc_lag_warning_threshold_mb",
        "cdc_lag_critical_threshold_mb",
        "cdc_consistent_point",
    }
)
# Postgres may give a connection string instead of these fields (the form's own alternative).
_CONNECTION_STRING_ALTERNATIVES = {"Postgres": frozenset({"host", "port", "database", "user", "password"})}


class ConfigError(ValueError):
    """The config does not fit the source's form; the message is user-facing and names the field."""


@dataclass(frozen=True)
class _Sensitivity:
    public: frozenset[str]
    secret: frozenset[str]


def _typed_fields_of(source_type: str) -> tuple[FormField, ...] | None:
    if registry.form_ref(source_type) is None:
        return None
    return (*form_fields.form_fields(source_type), *form_fields.webhook_fields(source_type))


def _variants(name: str) -> set[str]:
    # A hyphenated form name is stored under either spelling (PostHog's `temporary-dataset`).
    return {name, name.replace("-", "_")}


@cache
def _sensitivity(source_type: str) -> _Sensitivity | None:
    fields = _typed_fields_of(source_type)
    if fields is None:
        return None
    public: set[str] = set()
    secret: set[str] = set()

    def visit(items: Iterable[FormField]) -> None:
        for field in items:
            names = _variants(field.name)
            (secret if field.is_secret else public).update(names)
            if isinstance(field, form_fields.SshTunnelField):
                public.update(SSH_TUNNEL_PUBLIC_KEYS)
                secret.update(SSH_TUNNEL_SECRET_KEYS)
            visit(field.children())

    visit(fields)
    return _Sensitivity(frozenset(public | ALWAYS_KEPT_KEYS), frozenset(secret))


def sensitive_paths(source_type: str) -> list[tuple[str, ...]]:
    """Where the form's secrets live in a config, e.g. ("password",), ("ssh_tunnel", "auth", "private_key")."""
    fields = _typed_fields_of(source_type)
    if fields is None:
        return []
    paths: list[tuple[str, ...]] = []

    def visit(items: Iterable[FormField], prefix: tuple[str, ...]) -> None:
        for field in items:
            name = field.name
            if isinstance(field, form_fields.SshTunnelField):
                for key in sorted(SSH_TUNNEL_SECRET_KEYS):
                    paths.append((*prefix, name, key))
                    paths.append((*prefix, name, "auth", key))
            elif isinstance(field, form_fields.SelectField):
                visit(field.children(), (*prefix, name))
                visit(field.children(), prefix)  # stored flat as well (PostHog's legacy shape)
            elif isinstance(field, form_fields.SwitchGroupField):
                visit(field.children(), (*prefix, name))
            elif field.is_secret:
                paths.append((*prefix, name))

    visit(fields, ())
    return list(dict.fromkeys(paths))


def is_sensitive_key(source_type: str, key_path: str | Sequence[str]) -> bool:
    """True when the key (a name, a dotted path or a path tuple) holds a secret of this source's form."""
    sensitivity = _sensitivity(source_type)
    if sensitivity is None:
        return False
    parts = key_path.split(".") if isinstance(key_path, str) else list(key_path)
    return any(part in sensitivity.secret for part in parts)


def split_secrets(source_type: str, job_inputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public part, secret part): `merge_secrets` of the two gives `job_inputs` back.

    The public part is exactly what the API may show; everything else (secrets and unknown keys) is
    in the secret part, with nested containers such as `ssh_tunnel` keeping their shape in both.
    """
    sensitivity = _sensitivity(source_type)
    if sensitivity is None:
        return {}, copy.deepcopy(dict(job_inputs))
    return _split(job_inputs, sensitivity)


def _split(data: Mapping[str, Any], sensitivity: _Sensitivity) -> tuple[dict[str, Any], dict[str, Any]]:
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in data.items():
        if key in sensitivity.secret or key not in sensitivity.public:
            secret[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping):
            public[key], nested_secret = _split(value, sensitivity)
            if nested_secret:
                secret[key] = nested_secret
        else:
            public[key] = copy.deepcopy(value)
    return public, secret


def merge_secrets(public: Mapping[str, Any], secret: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep merge: nested dicts are merged key by key; elsewhere the secret part wins."""
    merged = copy.deepcopy(dict(public))
    for key, value in (secret or {}).items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_secrets(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def public_job_inputs(source_type: str, job_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `job_inputs` an API answer may carry: declared non-sensitive keys only ({} for unknown types)."""
    if not job_inputs:
        return {}
    return split_secrets(source_type, job_inputs)[0]


def secret_values(source_type: str, config: Mapping[str, Any]) -> list[str]:
    """Every non-empty secret value in `config` (longest first), for scrubbing text that leaves the server.

    Includes the password inside a connection string, which may show up on its own in a driver's error.
    """
    sensitivity = _sensitivity(source_type)
    if sensitivity is None:
        return []
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)
        elif isinstance(value, str) and value.strip():
            found.append(value)
            password = connection_string_password(value)
            if password:
                found.append(password)

    def walk(data: Mapping[str, Any]) -> None:
        for key, value in data.items():
            if key in sensitivity.secret:
                collect(value)
            elif isinstance(value, Mapping):
                walk(value)

    walk(config)
    return sorted(set(found), key=lambda item: (-len(item), item))


# The selects PostHog's config classes store nested (its _NESTED_AUTH_CONTAINERS): how a source signs in.
NESTED_SELECTS = ("auth_method", "auth_type")


def nest_selects(source_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with its sign-in select stored as PostHog stores it: nested `{"selection": value, ...the
    chosen option's fields}` (Stripe's `auth_method`), whether the caller sent that shape or the legacy flat
    one (`auth_method: "api_key"` beside `stripe_secret_key`). A flat value sent beside a nested one wins: it
    is the newer (a PATCH merges flat keys over the stored nested ones). Other selects (TLS modes) stay flat."""
    result = dict(config)
    for field in form_fields.form_fields(source_type):
        if not isinstance(field, form_fields.SelectField) or field.name not in NESTED_SELECTS:
            continue
        options = {option.value: option for option in field.options}
        value = result.get(field.name)
        nested = dict(value) if isinstance(value, Mapping) else {}
        selection = nested.get("selection") if isinstance(value, Mapping) else value
        if _is_empty(selection):
            selection = field.defaultValue
        if selection not in options:
            continue  # validation names the bad value
        nested["selection"] = selection
        for child in options[selection].fields:
            for variant in _variants(child.name):
                if variant in result:
                    nested[child.name] = result.pop(variant)
        result[field.name] = nested
    return result


# --- validation -----------------------------------------------------------------------------------------


def validate_config(source_type: str, config: Mapping[str, Any]) -> None:
    """Raise ConfigError("Invalid source config: ...") for the first missing or malformed field."""
    fields = _fields_of_form(source_type)
    if not isinstance(config, Mapping):
        raise ConfigError("Invalid source config: expected an object of form fields")
    skipped: frozenset[str] = frozenset()
    alternatives = _CONNECTION_STRING_ALTERNATIVES.get(source_type)
    if alternatives and not _is_empty(config.get("connection_string")):
        _check_connection_string(str(config["connection_string"]))
        skipped = alternatives
    _validate_fields(fields, config, config, skipped)


def _fields_of_form(source_type: str) -> tuple[FormField, ...]:
    if registry.form_ref(source_type) is None:
        raise ConfigError(f"Invalid source config: Unknown source type '{source_type}'")
    return form_fields.form_fields(source_type)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _missing(name: str) -> ConfigError:
    return ConfigError(f"Invalid source config: Required field '{name}' is missing")


def _lookup(container: Mapping[str, Any], name: str) -> Any:
    for variant in _variants(name):
        if variant in container:
            return container[variant]
    return None


def _validate_fields(
    fields: Iterable[FormField], container: Mapping[str, Any], top: Mapping[str, Any], skipped: frozenset[str]
) -> None:
    for field in fields:
        name = field.name
        value = _lookup(container, name)
        if isinstance(field, form_fields.SelectField):
            _validate_select(field, value, container, top, skipped)
        elif isinstance(field, form_fields.SwitchGroupField):
            if isinstance(value, Mapping) and truthy(value.get("enabled")):
                _validate_fields(field.fields, value, top, skipped)
        elif isinstance(field, form_fields.SshTunnelField):
            _validate_ssh_tunnel(name, value)
        elif isinstance(field, form_fields.FileUploadField):
            _validate_file_upload(field, value)
        elif field.required and name not in skipped and _is_empty(value):
            raise _missing(name)
        elif field.type == "number" and not _is_empty(value) and not _is_number(value):
            raise ConfigError(f"Invalid source config: Field '{name}' must be a number")


def _validate_select(
    field: form_fields.SelectField,
    value: Any,
    container: Mapping[str, Any],
    top: Mapping[str, Any],
    skipped: frozenset[str],
) -> None:
    name = field.name
    selection = value.get("selection") if isinstance(value, Mapping) else value
    if isinstance(selection, bool):
        selection = "true" if selection else "false"
    if _is_empty(selection):
        selection = field.defaultValue
    options = {option.value: option for option in field.options}
    if selection not in options:
        if field.required and selection is None:
            raise _missing(name)
        allowed = ", ".join(options)
        raise ConfigError(f"Invalid source config: Field '{name}' must be one of: {allowed}")
    # The chosen option's fields sit under the select's name, or flat beside it (PostHog accepts both).
    nested = value if isinstance(value, Mapping) else {}
    _validate_fields(options[selection].fields, merge_secrets(container, nested), top, skipped)


def _validate_ssh_tunnel(name: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not truthy(value.get("enabled")):
        return
    for key in ("host", "port"):
        if _is_empty(value.get(key)):
            raise _missing(f"{name}.{key}")
    if not _is_number(value.get("port")):
        raise ConfigError(f"Invalid source config: Field '{name}.port' must be a number")
    auth = value.get("auth")
    username = auth.get("username") if isinstance(auth, Mapping) else value.get("username")
    if _is_empty(username):
        raise _missing(f"{name}.auth.username")


def _validate_file_upload(field: form_fields.FileUploadField, value: Any) -> None:
    name = field.name
    if _is_empty(value) or value == {}:
        if field.required:
            raise _missing(name)
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f"Invalid source config: Field '{name}' must be the uploaded JSON file's object")
    keys = (field.fileFormat.keys if field.fileFormat else None) or []
    wanted = [keys] if isinstance(keys, str) else list(keys)
    absent = [key for key in wanted if _is_empty(value.get(key))]
    if absent:
        raise ConfigError(f"Invalid source config: Field '{name}' is missing keys: {', '.join(absent)}")


def _check_connection_string(value: str) -> None:
    from psycopg import ProgrammingError, conninfo

    try:
        conninfo.conninfo_to_dict(value)
    except ProgrammingError:
        # The driver's message can quote part of the string (and so the password): never repeat it.
        raise ConfigError(
            "Invalid source config: connection_string is not a valid PostgreSQL connection string "
            "(expected postgresql://user:password@host:5432/database)"
        ) from None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and value.strip().isdigit()


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)
