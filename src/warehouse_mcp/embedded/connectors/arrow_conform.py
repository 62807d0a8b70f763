"""Bring a driver's Arrow columns to the exact Arrow types a connector promises (`warehouse_type`'s).

Arrow-native drivers (ADBC, connectorx) hand back their own choices: extension types (opaque
numeric text, JSON, UUID), decimals as text, other bit widths. `conform_batch` converts each column
without going through Python objects and without loss: a value that cannot be converted exactly
fails the read with a message naming the column, never lands altered.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from warehouse_mcp.embedded.connectors.base import SourceError

# How Postgres numeric (and MySQL decimal) NaN arrives as text; DECIMAL has no NaN, NULL is closest.
_NAN_TEXTS = ("nan", "NaN")


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema, qualified: str) -> pa.RecordBatch:
    """`batch` with `schema`'s column types (matched by position), or a SourceError naming the column."""
    arrays = []
    for array, field in zip(batch.columns, schema, strict=True):
        try:
            arrays.append(conform_array(array, field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            landing = (field.metadata or {}).get(b"warehouse_type", str(field.type).encode()).decode()
            raise SourceError(
                f"Column '{field.name}' of '{qualified}' has a value that does not fit {landing}: {error}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def conform_array(array: pa.Array, target: pa.DataType) -> pa.Array:
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    if array.type == target:
        return array
    if pa.types.is_list(target) and (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        values = conform_array(array.flatten() if array.offset else array.values, target.value_type)
        offsets = array.offsets
        if array.offset:  # flatten() rebased the values: rebase the offsets to match
            offsets = pc.subtract(offsets, offsets[0])
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=array.is_null())
    if pa.types.is_decimal(target) and (
        pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    ):
        nan = pc.is_in(array, value_set=pa.array(_NAN_TEXTS, type=array.type))
        array = pc.if_else(nan, pa.scalar(None, type=array.type), array)
    return pc.cast(array, target)
