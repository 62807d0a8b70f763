"""The lowest date/time cursor value that MySQL/MariaDB transactions still running may yet commit.

A row becomes visible when its transaction commits, but a cursor set by the server's clock (`NOW()`,
`CURRENT_TIMESTAMP`, `ON UPDATE CURRENT_TIMESTAMP`) holds the time its statement started, which can be long
before. Taken before a read's own snapshot, the floor is the earlier of the server's clock and the start of
the oldest InnoDB transaction still running (`information_schema.INNODB_TRX`, readable with the PROCESS
privilege only), less FLOOR_MARGIN. A row the read did not see, whose cursor its own transaction set from the
server's clock, holds a value at or above the floor. The engine saves the floor with the cursor, and the
next read starts there when it is below the cursor (docs/sync-guarantees.md, "Late commits").

FLOOR_MARGIN covers a statement's start (its `NOW()`) preceding its transaction's entry in INNODB_TRX (a
transaction starts at the first statement that touches an InnoDB table), and that table being a cache
refreshed every 0.1 s.

Time zones, erring on the side of reading more:
- `trx_started` is a wall time in whole seconds in the server's system zone (filled with localtime(),
  whatever the session's zone): it counts both as UTC and as converted from the system zone, the earlier wins.
- TIMESTAMP columns compare in the session's zone (UTC, see mysql.py): the floor is that UTC time.
- DATETIME and DATE columns hold the writer's wall time: the floor is the earliest wall time of that instant
  in UTC, in the server's system zone and in its global `time_zone`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

FLOOR_MARGIN = dt.timedelta(seconds=2)
DATE_TIME_TYPES = frozenset({"date", "datetime", "timestamp"})  # information_schema DATA_TYPE

_NOW_AND_OLDEST_START_SQL = (
    "SELECT UTC_TIMESTAMP(6), MIN(trx_started), MIN(CONVERT_TZ(trx_started, 'SYSTEM', '+00:00')) "
    "FROM information_schema.INNODB_TRX"
)
_WALL_TIMES_SQL = "SELECT CONVERT_TZ(%s, '+00:00', 'SYSTEM'), CONVERT_TZ(%s, '+00:00', @@global.time_zone)"


def cursor_floor(cursor: Any, data_type: str) -> dt.date | dt.datetime:
    """The floor for a cursor column of `data_type` (one of DATE_TIME_TYPES), in the column's terms: an aware
    UTC datetime (timestamp), a naive datetime (datetime) or a date. `cursor` is a PyMySQL cursor of a UTC
    session; raises PyMySQL's error when INNODB_TRX cannot be read."""
    cursor.execute(_NOW_AND_OLDEST_START_SQL)
    floor = _earliest(cursor.fetchone()) - FLOOR_MARGIN
    if data_type == "timestamp":
        return floor.replace(tzinfo=dt.UTC)
    cursor.execute(_WALL_TIMES_SQL, (floor, floor))
    wall_time = _earliest((floor, *cursor.fetchone()))  # a zone unknown to the server converts to NULL
    return wall_time.date() if data_type == "date" else wall_time


def _earliest(values: Any) -> dt.datetime:
    return min(value for value in values if isinstance(value, dt.datetime))
