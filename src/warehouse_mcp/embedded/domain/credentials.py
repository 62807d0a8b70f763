"""Stored credentials and connect links: how secrets reach the embedded backend without the conversation.

A stored credential is a source's connection payload, checked against the live source, encrypted
with the vault, kept for 24 hours and consumed once by `setup` (api-semantics §4: connect_link,
store_credentials, stored_credentials). Only metadata ever leaves this module through the API.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from warehouse_mcp.embedded.connectors import form_fields, forms, registry
from warehouse_mcp.embedded.connectors.base import Connector
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import DomainError, Refused
from warehouse_mcp.embedded.store import Store, utcnow
from warehouse_mcp.embedded.store import credentials as credential_records
from warehouse_mcp.embedded.store.credentials import ConnectToken
from warehouse_mcp.embedded.store.vault import Vault

logger = logging.getLogger(__name__)

CREDENTIAL_TTL = timedelta(hours=24)
INTEGRATION_FIELD = "credential_id"
CONNECT_LINK_TTL = timedelta(minutes=30)
# Used and expired tokens stay a day so the MCP layer can still read "completed"/"expired".
TOKEN_RETENTION = timedelta(days=1)
MAX_TOKEN_CHARS = 200


# --- the checks every way in shares (store_credentials and the connect page) ---------------------


def connector_or_error(source_type: str | None) -> Connector:
    """The embedded connector for `source_type`, or the API error that explains why there is none."""
    if not source_type:
        raise Refused("Missing required parameter: source_type")
    if not registry.is_known(source_type):
        raise Refused(f"Unknown source_type '{source_type}'")
    return connector_access.connector(source_type)


def check_credential(source_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `payload` as `source_type`'s config, then against the live source; return the config to store.

    Only the form's fields are kept. Raises a DomainError (answered 400) with the form's or the source's message, which
    never holds a secret: connectors word SourceError without them, and anything else is reported by
    its kind only.
    """
    connector = connector_or_error(source_type)
    config = connector_access.only_form_fields(source_type, _strip_public_strings(source_type, dict(payload)))
    connector_access.check_config(source_type, config)
    try:
        connector_access.check_credentials(connector, config)
    except DomainError:
        raise
    except Exception as exc:
        logger.warning("credential check for %s failed unexpectedly: %s", source_type, type(exc).__name__)
        raise Refused(
            f"Could not check the credentials against the {source_type} source ({type(exc).__name__}). "
            "Check the connection details and try again."
        ) from None
    return config


def insert_credential(
    db: sqlite3.Connection,
    vault: Vault,
    team_id: int,
    source_type: str,
    config: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store a checked config (inside the caller's transaction); return its metadata."""
    created = now or utcnow()
    stored = credential_records.insert_credential(
        db,
        str(uuid.uuid4()),
        team_id,
        source_type,
        vault.encrypt(dict(config)),
        created,
        created + CREDENTIAL_TTL,
    )
    return stored.metadata()


def store_credential(
    store: Store, vault: Vault, team_id: int, source_type: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """store_credentials: check, encrypt, keep for 24 h; answer the metadata."""
    config = check_credential(source_type, payload)
    with store.transaction() as db:
        return insert_credential(db, vault, team_id, source_type, config)


def list_stored_credentials(
    store: Store, team_id: int, source_type: str | None = None, search: str | None = None
) -> list[dict[str, Any]]:
    """The team's unexpired credentials, newest first, metadata only."""
    return [
        stored.metadata()
        for stored in credential_records.live_credentials(store, team_id, utcnow(), source_type, search)
    ]


def take_stored_credential(
    store: Store, vault: Vault, team_id: int, credential_id: str, source_type: str
) -> dict[str, Any]:
    """The payload of an unexpired stored credential of this team and type (does not delete it)."""
    found = credential_records.live_credential_secret(store, team_id, str(credential_id), utcnow())
    if found is None:
        raise Refused(f"Stored credential '{credential_id}' not found or expired")
    stored_type, payload_secret = found
    if stored_type != source_type:
        raise Refused(f"Stored credential '{credential_id}' is for '{stored_type}', not '{source_type}'")
    payload = vault.decrypt(payload_secret)
    return dict(payload or {})


def delete_stored_credential(store: Store, credential_id: str) -> None:
    """Forget a stored credential (setup calls this after a successful create: single use)."""
    credential_records.delete_credential(store, str(credential_id))


def auth_method(source_type: str) -> str:
    """ "oauth" when the form's only way in is an OAuth field, else "credentials"."""
    fields = form_fields.form_fields(source_type)
    required = [field for field in fields if field.required] or fields
    if required and all(isinstance(field, form_fields.OAuthField) for field in required):
        return "oauth"
    return "credentials"


def connect_link_instructions(source_type: str, minutes: int) -> str:
    return (
        f"Give the user this link to open in their browser. It shows the {source_type} connection form; "
        "the credentials are checked against the live source and stored encrypted on this machine, and "
        "never pass through this conversation. The link works once and expires in "
        f"{minutes} minutes. When the user says they are done, call data-warehouse-stored-credentials-list "
        f"(source_type={source_type}) and pass the newest credential_id as payload.credential_id to "
        "data-warehouse-source-setup."
    )


# --- connect links and their state -----------------------------------------------------------------


class ConnectBackend(Protocol):
    store: Store
    vault: Vault

    def connect_base_url(self) -> str: ...


def connect_link(backend: ConnectBackend, team_id: int, source_type: str) -> dict[str, Any]:
    """connect_link: a new one-time link to the connection form of `source_type`, and what to do with it."""
    connector_or_error(source_type)
    url, _token = new_connect_link(backend, team_id, source_type)
    minutes = int(CONNECT_LINK_TTL.total_seconds() // 60)
    return {
        "source_type": source_type,
        "auth_method": auth_method(source_type),
        "connect_url": url,
        "integration_field": INTEGRATION_FIELD,
        "instructions": connect_link_instructions(source_type, minutes),
    }


def new_connect_link(backend: ConnectBackend, team_id: int, source_type: str) -> tuple[str, str]:
    """Mint a one-time connect link for `source_type`; return (url, token). Only the token's hash is kept."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    credential_records.insert_connect_token(
        backend.store,
        _hash(token),
        team_id,
        source_type,
        csrf_token=secrets.token_urlsafe(32),
        now=now,
        expires=now + CONNECT_LINK_TTL,
        forget_before=now - TOKEN_RETENTION,
    )
    url = f"{backend.connect_base_url().rstrip('/')}/connect/{token}"
    return url, token


def connect_status(store: Store, token: str) -> dict[str, Any]:
    """{"state": "pending"|"completed"|"expired", "credential_id"?}: what became of a connect link."""
    link = _token(store, token)
    if link is not None and link.used and link.credential_id:
        return {"state": "completed", "credential_id": link.credential_id}
    if live_link(store, token) is None:
        return {"state": "expired"}
    return {"state": "pending"}


def live_link(store: Store, token: str) -> ConnectToken | None:
    """The link of `token` while it can still be used (not used, not expired), else None."""
    link = _token(store, token)
    if link is None or link.used or link.expires_at <= utcnow():
        return None
    return link


class LinkGone(Exception):
    """The link was used or expired between the check and the claim (two tabs submitting at once)."""


def complete_link(
    store: Store, vault: Vault, link: ConnectToken, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Store a checked config for the link's team and use the link up, in one transaction; the metadata."""
    with store.transaction() as db:
        metadata = insert_credential(db, vault, link.team_id, link.source_type, config)
        if not credential_records.claim_connect_token(
            db, link.token_hash, metadata["credential_id"], utcnow()
        ):
            raise LinkGone
    return metadata


# --- helpers -------------------------------------------------------------------------------------


def _strip_public_strings(source_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Strip surrounding blanks from top-level non-secret strings (as create does); secrets stay byte-exact."""
    secret_keys = {path[0] for path in forms.sensitive_paths(source_type) if len(path) == 1}
    return {
        key: value.strip() if isinstance(value, str) and key not in secret_keys else value
        for key, value in config.items()
    }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token(store: Store, token: str) -> ConnectToken | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return credential_records.connect_token(store, _hash(token))
