"""Calling connectors from the domain: their failures become `SourceRefused` (a `Refused`, answered 400).

Custom actions answer it as it is (`{"message": ...}`); standard CRUD (PATCH) turns it into DRF's
validation error where it catches it.
"""

from __future__ import annotations

from typing import Any

from warehouse_mcp.embedded.connectors import forms, registry, ssh_tunnel
from warehouse_mcp.embedded.connectors.base import Connector, SourceError, TableInfo, WebhookConnector
from warehouse_mcp.embedded.domain.errors import Refused


class SourceRefused(Refused):
    """The source, or its form, refused a config (answered as `{"message": ...}` with status 400)."""


def connector(source_type: str) -> Connector:
    """The embedded connector; a type only a PostHog backend runs is a 400 naming the runnable types."""
    try:
        return registry.connector_for(source_type)
    except registry.UnsupportedSource as exc:
        raise SourceRefused(str(exc)) from None


def webhook_connector(source_type: str) -> WebhookConnector | None:
    found = connector(source_type)
    return found if isinstance(found, WebhookConnector) else None


def check_config(source_type: str, config: dict[str, Any]) -> None:
    """The form's rules ("Invalid source config: Required field 'x' is missing")."""
    try:
        forms.validate_config(source_type, config)
    except forms.ConfigError as exc:
        raise SourceRefused(str(exc)) from None


def check_credentials(found: Connector, config: dict[str, Any]) -> None:
    """Connect to the live source ("Invalid credentials" or the source's own message).

    An SSH tunnel's bastion host key seen for the first time is written into `config`
    (`ssh_tunnel.host_key_fingerprint`: trust on first use), so the stored source pins it from then on.
    """
    try:
        with ssh_tunnel.tunnel_scope() as scope:
            found.validate(config)
    except SourceError as exc:
        raise SourceRefused(str(exc) or "Invalid credentials") from None
    ssh_tunnel.pin_host_key(config, scope)


def discover(found: Connector, config: dict[str, Any], *, direct: bool = False) -> list[TableInfo]:
    """The source's tables. A direct source with a blank `schema` lists every schema's tables under
    qualified names (`public.orders`), as PostHog's direct engines do."""
    try:
        every_schema = getattr(found, "discover_every_schema", None)
        if direct and callable(every_schema) and not str(config.get("schema") or "").strip():
            return list(every_schema(config))
        return found.discover(config)
    except SourceError as exc:
        raise SourceRefused(str(exc)) from None


# PostHog's words for a discovery that failed (its helpers' REFRESH_SCHEMAS_EXPECTED_ERROR_MESSAGES),
# first match wins; anything else is the fallback.
_DISCOVERY_FAILURES = (
    ("timeout", "Connection timed out while fetching schemas from the source."),
    ("timed out", "Connection timed out while fetching schemas from the source."),
    ("connection refused", "Could not connect to the source. Check the host, port, and network access."),
    ("could not connect", "Could not connect to the source. Check the host, port, and network access."),
    ("could not translate host name", "Could not resolve the source host."),
    ("name or service not known", "Could not resolve the source host."),
    ("network is unreachable", "Could not reach the source network."),
    ("no route to host", "Could not reach the source host."),
    ("access denied", "Could not authenticate with the source. Check the connection credentials."),
    ("authentication failed", "Could not authenticate with the source. Check the connection credentials."),
    ("unauthorized", "Could not authenticate with the source. Check the connection credentials."),
    ("forbidden", "The source credentials do not have permission to fetch schemas."),
    ("ssl/tls connection is required", "SSL/TLS is required to connect to the source."),
    ("could not establish session to ssh gateway", "Could not establish an SSH tunnel to the source."),
)
DISCOVERY_FAILED = "Could not fetch schemas from source."


def refresh_error_message(error: SourceError) -> str:
    """What refresh_schemas answers when discovery fails: PostHog's classified message, never the raw one."""
    text = str(error).lower()
    return next((message for pattern, message in _DISCOVERY_FAILURES if pattern in text), DISCOVERY_FAILED)


def endpoint_permissions(found: Connector, config: dict[str, Any], names: list[str]) -> dict[str, str | None]:
    """Per table, why the credentials cannot read it (None when they can). Best effort, as PostHog's probe:
    connectors without per-table permissions, or a probe that fails, report every table readable."""
    probe = getattr(found, "endpoint_permissions", None)
    if not callable(probe):
        return {}
    try:
        return dict(probe(config, names))
    except SourceError:
        return {}


# Settings that are booleans, whatever text a client echoes for them.
BOOLEAN_SETTINGS = ("cdc_enabled", "cdc_auto_drop_slot")


def only_form_fields(source_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The config keys a source stores: its form's fields (public and secret) and the CDC settings.

    Anything else in a payload (`schemas`, `source_type`, stray keys) is not configuration and is
    not stored, so an unknown key can never park a secret in the plain-text column. Selects whose
    options carry fields are stored nested, as PostHog stores them (forms.nest_selects).
    """
    public, secret = forms.split_secrets(source_type, forms.nest_selects(source_type, payload))
    config = forms.merge_secrets(
        forms.public_job_inputs(source_type, public), _known_secret(source_type, secret)
    )
    for key in BOOLEAN_SETTINGS:
        if isinstance(config.get(key), str):  # PostHog answers booleans as "True"/"False": read them as such
            config[key] = forms.truthy(config[key])
    return config


def _known_secret(source_type: str, secret: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for path in forms.sensitive_paths(source_type):
        value: Any = secret
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        target = kept
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return kept
