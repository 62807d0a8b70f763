"""SQL for stored credentials and connect links (their one-time tokens, kept as sha256 hashes)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warehouse_mcp.embedded.store import Store, iso


@dataclass(frozen=True)
class StoredCredential:
    credential_id: str
    source_type: str
    created_at: str
    expires_at: str

    def metadata(self) -> dict[str, Any]:
        return {
            "credential_id": self.credential_id,
            "source_type": self.source_type,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class ConnectToken:
    token_hash: str
    team_id: int
    source_type: str
    csrf_token: str
    expires_at: datetime
    used: bool
    credential_id: str | None


# --- stored credentials ----------------------------------------------------------------------------


def insert_credential(
    db: sqlite3.Connection,
    credential_id: str,
    team_id: int,
    source_type: str,
    payload_secret: bytes,
    created: datetime,
    expires: datetime,
) -> StoredCredential:
    """Store an encrypted payload (inside the caller's transaction), first forgetting expired ones."""
    db.execute("DELETE FROM stored_credentials WHERE julianday(expires_at) <= julianday(?)", (iso(created),))
    db.execute(
        "INSERT INTO stored_credentials (id, team_id, source_type, payload_secret, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (credential_id, team_id, source_type, payload_secret, iso(created), iso(expires)),
    )
    return StoredCredential(credential_id, source_type, _iso(created), _iso(expires))


def live_credentials(
    store: Store, team_id: int, now: datetime, source_type: str | None = None, search: str | None = None
) -> list[StoredCredential]:
    """The team's unexpired credentials, newest first."""
    sql = (
        "SELECT id, source_type, created_at, expires_at FROM stored_credentials "
        "WHERE team_id = ? AND julianday(expires_at) > julianday(?)"
    )
    params: list[Any] = [team_id, iso(now)]
    if source_type:
        sql += " AND source_type = ?"
        params.append(source_type)
    if search:
        sql += " AND (instr(lower(source_type), ?) > 0 OR instr(lower(id), ?) > 0)"
        params += [search.lower(), search.lower()]
    sql += " ORDER BY julianday(created_at) DESC, rowid DESC"
    return [
        StoredCredential(row["id"], row["source_type"], row["created_at"], row["expires_at"])
        for row in store.query(sql, tuple(params))
    ]


def live_credential_secret(
    store: Store, team_id: int, credential_id: str, now: datetime
) -> tuple[str, bytes] | None:
    """`(source_type, payload ciphertext)` of an unexpired credential of this team, or None."""
    row = store.query_one(
        "SELECT source_type, payload_secret FROM stored_credentials "
        "WHERE id = ? AND team_id = ? AND julianday(expires_at) > julianday(?)",
        (credential_id, team_id, iso(now)),
    )
    return None if row is None else (row["source_type"], row["payload_secret"])


def delete_credential(store: Store, credential_id: str) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM stored_credentials WHERE id = ?", (credential_id,))


# --- connect tokens --------------------------------------------------------------------------------


def insert_connect_token(
    store: Store,
    token_hash: str,
    team_id: int,
    source_type: str,
    csrf_token: str,
    now: datetime,
    expires: datetime,
    forget_before: datetime,
) -> None:
    """Keep a new link's token hash, forgetting tokens that expired before `forget_before`."""
    with store.transaction() as db:
        db.execute(
            "DELETE FROM connect_tokens WHERE julianday(expires_at) < julianday(?)", (iso(forget_before),)
        )
        db.execute(
            "INSERT INTO connect_tokens (token_hash, team_id, source_type, csrf_token, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash, team_id, source_type, csrf_token, iso(now), iso(expires)),
        )


def connect_token(store: Store, token_hash: str) -> ConnectToken | None:
    row = store.query_one("SELECT * FROM connect_tokens WHERE token_hash = ?", (token_hash,))
    if row is None:
        return None
    return ConnectToken(
        token_hash=row["token_hash"],
        team_id=row["team_id"],
        source_type=row["source_type"],
        csrf_token=row["csrf_token"],
        expires_at=datetime.fromisoformat(row["expires_at"]),
        used=row["used_at"] is not None,
        credential_id=row["credential_id"],
    )


def claim_connect_token(db: sqlite3.Connection, token_hash: str, credential_id: str, now: datetime) -> bool:
    """Mark a live token used by `credential_id` (inside the caller's transaction); False if it was not live."""
    claimed = db.execute(
        "UPDATE connect_tokens SET used_at = ?, credential_id = ? "
        "WHERE token_hash = ? AND used_at IS NULL AND julianday(expires_at) > julianday(?)",
        (iso(now), credential_id, token_hash, iso(now)),
    )
    return claimed.rowcount == 1


def _iso(moment: datetime) -> str:
    return str(iso(moment))
