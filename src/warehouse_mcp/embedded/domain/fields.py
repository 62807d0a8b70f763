"""Field readers for request bodies, with DRF's wording, so a malformed body gets the answer PostHog would give."""

from __future__ import annotations

from typing import Any

from warehouse_mcp.embedded.domain.errors import (
    Invalid,
    invalid_choice,
    not_a_boolean,
    not_a_dict,
    not_a_list,
    not_a_string,
    too_long,
)


def optional_str(data: dict[str, Any], name: str, *, max_length: int | None = None) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise not_a_string(name)
    if max_length is not None and len(value) > max_length:
        raise too_long(name, max_length)
    return value


def optional_bool(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise not_a_boolean(name)


def choice(
    data: dict[str, Any], name: str, choices: tuple[str, ...] | list[str], default: str | None = None
) -> str:
    value = data.get(name, default)
    if value is None:
        raise Invalid("This field may not be null.", name, "null")
    if value not in choices:
        raise invalid_choice(value, name)
    return str(value)


def optional_choice(data: dict[str, Any], name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if value not in choices:
        raise invalid_choice(value, name)
    return str(value)


def optional_dict(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise not_a_dict(value, name)
    return value


def optional_str_list(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise not_a_list(value, name)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise not_a_string(f"{name}__{index}")
    return list(value)
