"""Passwords inside connection strings (a URL's or libpq's `password=`), so they are treated as secrets."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def connection_string_password(value: str) -> str | None:
    """The password embedded in a URL (`scheme://user:pw@host`) or libpq `password=` string, if any."""
    if "://" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            return None
        return unquote(password) if password else None
    match = _KEYWORD_PASSWORD.search(value)
    if not match:
        return None
    password = match.group(1)
    if password.startswith("'"):
        password = re.sub(r"\\(.)", r"\1", password[1:-1])
    return password or None
