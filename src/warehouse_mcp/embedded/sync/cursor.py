"""A schema's saved sync position (`schemas.sync_cursor`, JSON).

`{"value": v, "xid": n}`: `value` is the highest `incremental_field` read so far (ISO text for dates and
times, text for decimals); `xid` (Postgres) is the oldest transaction that was still running when the last
read took its snapshot, as a 64-bit id: any row committed after that read was written by a transaction at or
above it. `key` (tables merged on a primary key) is the source's primary key at the last read, so a change
of it between syncs is noticed. A bare JSON value is a cursor saved before `xid` existed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class SyncCursor:
    value: Any = None
    xid: int | None = None
    key: tuple[str, ...] | None = None


def load(text: str | None) -> SyncCursor | None:
    if text is None:
        return None
    saved = json.loads(text)
    if isinstance(saved, dict) and set(saved) <= {"value", "xid", "key"}:
        xid, key = saved.get("xid"), saved.get("key")
        return SyncCursor(
            saved.get("value"), int(xid) if xid is not None else None, tuple(key) if key is not None else None
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
    return json.dumps(saved)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
