"""Merging a PATCHed `job_inputs` over the stored config (api-semantics §1 PATCH rules).

API reads never return secrets, so a client echoing a source's `job_inputs` back sends them
without the password: an omitted or empty secret keeps the stored one. That convenience must not
let anyone point a stored secret at another server, so changing the connection target (host, or
the SSH tunnel's enabled/host/port) while a stored secret would be reused is refused.
"""

from __future__ import annotations

from typing import Any

from warehouse_mcp.embedded.connectors import forms
from warehouse_mcp.embedded.domain.errors import Invalid

CONNECTION_TARGET_FIELDS = ("host", "instance_url")
SSH_TARGET_FIELDS = ("enabled", "host", "port")
SSH_SECRET_FIELDS = ("password", "passphrase", "private_key")
NESTED_AUTH_CONTAINERS = ("auth_method", "auth_type")
# Secrets an edit form can never re-supply (parsed into the separate fields on create): gating on
# them would block every host change forever.
CREATION_ONLY_SECRETS = frozenset({"connection_string"})


def sensitive_names(source_type: str) -> set[str]:
    """Names of the form's secret fields, wherever they sit (the SSH tunnel's are handled apart)."""
    return {path[-1] for path in forms.sensitive_paths(source_type) if path and path[0] != "ssh_tunnel"}


def merge_job_inputs(source_type: str, existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    sensitive = sensitive_names(source_type)
    merged = {**existing, **incoming}

    host_changed = any(
        field in incoming and incoming[field] != existing.get(field) for field in CONNECTION_TARGET_FIELDS
    )
    tunnel_changed = "ssh_tunnel" in incoming and _tunnel_target_changed(
        existing.get("ssh_tunnel"), incoming.get("ssh_tunnel")
    )
    if (host_changed or tunnel_changed) and _reuses_stored_secret(
        existing, incoming, sensitive - CREATION_ONLY_SECRETS
    ):
        if tunnel_changed:
            raise Invalid("Changing the SSH tunnel requires re-entering your database credentials.")
        raise Invalid("Changing the connection host requires re-entering your credentials.")

    for key in sensitive:
        if existing.get(key) and not incoming.get(key):
            merged[key] = existing[key]

    for container in NESTED_AUTH_CONTAINERS:
        old, new = existing.get(container), incoming.get(container)
        if not (isinstance(old, dict) and isinstance(new, dict)):
            continue
        if old.get("selection") != new.get("selection"):
            merged[container] = new  # another way to sign in: the old secrets do not carry over
        else:
            merged_container = {**old, **new}
            for key in sensitive:
                if old.get(key) and not new.get(key):
                    merged_container[key] = old[key]
            merged[container] = merged_container

    old_tunnel, new_tunnel = existing.get("ssh_tunnel"), incoming.get("ssh_tunnel")
    if isinstance(old_tunnel, dict) and old_tunnel and isinstance(new_tunnel, dict):
        merged["ssh_tunnel"] = _merge_tunnel(old_tunnel, new_tunnel)
    return merged


def _tunnel_target_changed(existing: Any, incoming: Any) -> bool:
    # Stored values and JSON input drift in type ("22" vs 22, "False" vs false): compare as text.
    existing = existing if isinstance(existing, dict) else {}
    incoming = incoming if isinstance(incoming, dict) else {}

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return any(text(existing.get(key)) != text(incoming.get(key)) for key in SSH_TARGET_FIELDS)


def _reuses_stored_secret(existing: dict[str, Any], incoming: dict[str, Any], sensitive: set[str]) -> bool:
    """Whether a stored secret would survive the merge because the update did not re-supply it."""
    if any(existing.get(key) and not incoming.get(key) for key in sensitive):
        return True
    for container in NESTED_AUTH_CONTAINERS:
        old = existing.get(container)
        if not isinstance(old, dict):
            continue
        new = incoming.get(container)
        if not isinstance(new, dict):
            if any(old.get(key) for key in sensitive):
                return True
            continue
        if old.get("selection") != new.get("selection"):
            continue
        if any(old.get(key) and not new.get(key) for key in sensitive):
            return True
    return False


def _merge_tunnel(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    host_changed = "host" in new and new["host"] != old.get("host")
    merged = {**old, **new}
    moved = any(str(merged.get(key)) != str(old.get(key)) for key in ("host", "port"))
    if moved and "host_key_fingerprint" not in new:
        # another SSH server: its key is trusted on first use again, not checked against the old one's
        merged.pop("host_key_fingerprint", None)
    old_auth = old.get("auth") or old.get("auth_type") or {}
    new_auth = new.get("auth") or new.get("auth_type") or {}
    if host_changed and not new_auth:
        raise Invalid("Changing the SSH tunnel host requires re-entering your SSH credentials.")
    if not new_auth:
        merged["auth"] = {**old_auth}
        return merged
    merged_auth = {**new_auth}
    if not host_changed:
        for key in SSH_SECRET_FIELDS:
            if old_auth.get(key) and not new_auth.get(key):
                merged_auth[key] = old_auth[key]
    merged["auth"] = merged_auth
    return merged
