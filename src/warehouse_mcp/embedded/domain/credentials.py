"""Stored credentials and connect links: how secrets reach the embedded backend without the conversation.

A stored credential is a source's connection payload, checked against the live source, encrypted
with the vault, kept for 24 hours and consumed once by `setup` (api-semantics §4: connect_link,
store_credentials, stored_credentials). Only metadata ever leaves this module through the API.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import Connector
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import ErrorAnswer, message_error
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import Store, iso, utcnow
from warehouse_mcp.embedded.store.vault import Vault

logger = logging.getLogger(__name__)

CREDENTIAL_TTL = timedelta(hours=24)
INTEGRATION_FIELD = "credential_id"


# --- the checks every way in shares (store_credentials and the connect page) ---------------------


def connector_or_error(source_type: str | None) -> Connector:
    """The embedded connector for `source_type`, or the API error that explains why there is none."""
    if not source_type:
        raise message_error("Missing required parameter: source_type")
    if not registry.is_known(source_type):
        raise message_error(f"Unknown source_type '{source_type}'")
    return connector_access.connector(source_type)


def check_credential(source_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `payload` as `source_type`'s config, then against the live source; return the config to store.

    Only the form's fields are kept. Raises ErrorAnswer 400 with the form's or the source's message, which
    never holds a secret: connectors word SourceError without them, and anything else is reported by
    its kind only.
    """
    connector = connector_or_error(source_type)
    if not isinstance(payload, Mapping):
        raise message_error("'payload' must be an object of the source's connection fields")
    config = connector_access.only_form_fields(source_type, _strip_public_strings(source_type, dict(payload)))
    connector_access.check_config(source_type, config)
    try:
        connector_access.check_credentials(connector, config)
    except ErrorAnswer:
        raise
    except Exception as exc:
        logger.warning("credential check for %s failed unexpectedly: %s", source_type, type(exc).__name__)
        raise message_error(
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
    expires = created + CREDENTIAL_TTL
    credential_id = str(uuid.uuid4())
    _purge_expired_credentials(db, created)
    db.execute(
        "INSERT INTO stored_credentials (id, team_id, source_type, payload_secret, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (credential_id, team_id, source_type, vault.encrypt(dict(config)), iso(created), iso(expires)),
    )
    return {
        "credential_id": credential_id,
        "source_type": source_type,
        "created_at": iso(created),
        "expires_at": iso(expires),
    }


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
    sql = (
        "SELECT id, source_type, created_at, expires_at FROM stored_credentials "
        "WHERE team_id = ? AND julianday(expires_at) > julianday(?)"
    )
    params: list[Any] = [team_id, iso(utcnow())]
    if source_type:
        sql += " AND source_type = ?"
        params.append(source_type)
    if search:
        sql += " AND (instr(lower(source_type), ?) > 0 OR instr(lower(id), ?) > 0)"
        params += [search.lower(), search.lower()]
    sql += " ORDER BY julianday(created_at) DESC, rowid DESC"
    return [
        {
            "credential_id": row["id"],
            "source_type": row["source_type"],
            "created_at": row["created_at"],
            "expires_at": row["expires_at"],
        }
        for row in store.query(sql, tuple(params))
    ]


def take_stored_credential(
    store: Store, vault: Vault, team_id: int, credential_id: str, source_type: str
) -> dict[str, Any]:
    """The payload of an unexpired stored credential of this team and type (contract 6; does not delete it)."""
    row = store.query_one(
        "SELECT source_type, payload_secret FROM stored_credentials "
        "WHERE id = ? AND team_id = ? AND julianday(expires_at) > julianday(?)",
        (str(credential_id), team_id, iso(utcnow())),
    )
    if row is None:
        raise message_error(f"Stored credential '{credential_id}' not found or expired")
    if row["source_type"] != source_type:
        raise message_error(
            f"Stored credential '{credential_id}' is for '{row['source_type']}', not '{source_type}'"
        )
    payload = vault.decrypt(row["payload_secret"])
    return dict(payload or {})


def delete_stored_credential(store: Store, credential_id: str) -> None:
    """Forget a stored credential (setup calls this after a successful create: single use)."""
    with store.transaction() as db:
        db.execute("DELETE FROM stored_credentials WHERE id = ?", (str(credential_id),))


def auth_method(form: Mapping[str, Any] | None) -> str:
    """ "oauth" when the form's only way in is an OAuth field, else "credentials"."""
    fields = [f for f in (form or {}).get("fields", []) if isinstance(f, Mapping)]
    required = [f for f in fields if f.get("required")] or fields
    if required and all(f.get("type") == "oauth" for f in required):
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


# --- HTTP handlers (sync; app.py runs them in the thread pool) ------------------------------------


def connect_link(request: Request) -> Response:
    from warehouse_mcp.embedded.http import connect_page

    source_type = request.query_params.get("source_type", "").strip()
    connector_or_error(source_type)
    backend = request_context.backend(request)
    url, _token = connect_page.new_connect_link(backend, request_context.team_id(request), source_type)
    minutes = int(connect_page.CONNECT_LINK_TTL.total_seconds() // 60)
    return JSONResponse(
        {
            "source_type": source_type,
            "auth_method": auth_method(registry.form(source_type)),
            "connect_url": url,
            "integration_field": INTEGRATION_FIELD,
            "instructions": connect_link_instructions(source_type, minutes),
        }
    )


def store_credentials(request: Request) -> Response:
    body = request_context.body(request)
    source_type = body.get("source_type")
    if not source_type or not isinstance(source_type, str):
        raise message_error("Missing required parameter: source_type")
    payload = body.get("payload")
    if payload is None:
        payload = {}
    backend = request_context.backend(request)
    metadata = store_credential(
        backend.store, backend.vault, request_context.team_id(request), source_type, payload
    )
    return JSONResponse(metadata, status_code=201)


def stored_credentials(request: Request) -> Response:
    backend = request_context.backend(request)
    rows = list_stored_credentials(
        backend.store,
        request_context.team_id(request),
        source_type=request.query_params.get("source_type") or None,
        search=request.query_params.get("search") or None,
    )
    return JSONResponse(rows)


# --- helpers -------------------------------------------------------------------------------------


def _strip_public_strings(source_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Strip surrounding blanks from top-level non-secret strings (as create does); secrets stay byte-exact."""
    secret_keys = {path[0] for path in forms.sensitive_paths(source_type) if len(path) == 1}
    return {
        key: value.strip() if isinstance(value, str) and key not in secret_keys else value
        for key, value in config.items()
    }


def _purge_expired_credentials(db: sqlite3.Connection, now: datetime) -> None:
    db.execute("DELETE FROM stored_credentials WHERE julianday(expires_at) <= julianday(?)", (iso(now),))
