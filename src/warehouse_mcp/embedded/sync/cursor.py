"""A schema's saved sync position (`schemas.sync_cursor`, JSON).

`{"value": v, "xid": n}`: `value` is the highest `incremental_field` read so far (ISO text for dates and
times, text for decimals); `xid` (Postgres) is the oldest transaction that was still running when the last
read took its snapshot, as a 64-bit id: any row committed after that read was written by a transaction at or
above it. `floor` (MySQL/MariaDB, a date or time cursor) is the lowest cursor value a transaction still
running at the last read may commit, in the value's terms: the next read starts there when it is below
`value`. `key` (tables merged on a primary key) is the source's primary key at the last read, so a change
of it between syncs is noticed. A bare JSON value is a cursor saved before `xid` existed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class SyncCursor:
    value: Any = None
    xid: int | None = None
    key: tuple[str, ...] | None = None
    floor: Any = None


def load(text: str | None) -> SyncCursor | None:
    if text is None:
        return None
    saved = json.loads(text)
    if isinstance(saved, dict) and set(saved) <= {"value", "xid", "key", "floor"}:
        xid, key = saved.get("xid"), saved.get("key")
        return SyncCursor(
            saved.get("value"),
            int(xid) if xid is not None else None,
            tuple(key) if key is not None else None,
            saved.get("floor"),
        )
    return SyncCursor(saved)


def dump(cursor: SyncCursor | None) -> str | None:
    if cursor is None or (cursor.value is None and cursor.xid is None):
        return None
    saved: dict[str, Any] = {"value": json_value(cursor.value)}
    if cursor.xid is not None:
        saved["xid"] = cursor.xid
    if cursor.key is not None:
        saved["key"] = list(cursor.key)
    if cursor.floor is not None:
        saved["floor"] = json_value(cursor.floor)
    return json.dumps(saved)


def read_from(cursor: SyncCursor) -> Any:
    """Where the next incremental read starts: the saved value, or the saved floor when that is lower."""
    if cursor.floor is None or _instant(cursor.floor) >= _instant(cursor.value):
        return cursor.value
    return cursor.floor


def _instant(iso: str) -> datetime:
    """An ISO date or date-time (as `json_value` saves them) as a naive UTC datetime, to compare."""
    parsed = datetime.fromisoformat(iso)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo is not None else parsed


def json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
