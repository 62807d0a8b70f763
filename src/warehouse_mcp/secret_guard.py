"""Keeping secrets out of the conversation: spot them in tool arguments, scrub them from results."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

REDACTED = "[REDACTED]"

# Key names that hold a secret whatever the source (compared lower-case, without - and _).
SECRET_KEY_NAMES = frozenset(
    name.replace("_", "")
    for name in (
        "password",
        "passphrase",
        "passwd",
        "api_key",
        "apikey",
        "secret",
        "secret_key",
        "client_secret",
        "private_key",
        "token",
        "access_token",
        "refresh_token",
        "auth_token",
        "signing_secret",
        "stripe_secret_key",
        "webhook_secret",
        "credentials",
    )
)
# Values that are secrets by their look, wherever they appear.
SECRET_VALUE_PATTERNS = (
    re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"),
    re.compile(r"\bphx_[A-Za-z0-9]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)

CONNECT_FLOW = (
    "Secrets must not pass through the conversation. Instead: 1) call data-warehouse-source-connect-link "
    "with the source_type and give the link to the user; 2) after they say they are done, call "
    "data-warehouse-stored-credentials-list; 3) call data-warehouse-source-setup with "
    "payload={{'credential_id': <id>}}. (An operator can allow inline secrets for test harnesses with "
    "WAREHOUSE_MCP_ALLOW_INLINE_SECRETS=1.)"
)


def _normal(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str, form_secret_keys: Iterable[str] = ()) -> bool:
    normal = _normal(key)
    if normal in SECRET_KEY_NAMES or normal.endswith(
        ("password", "secret", "secretkey", "privatekey", "apikey", "token")
    ):
        return True
    return key in form_secret_keys


def connection_string_has_password(value: str) -> bool:
    if re.search(r"(?i)\bpassword\s*=\s*\S", value):
        return True
    try:
        return bool(urlsplit(value).password)
    except ValueError:
        return False


def find_secrets(arguments: Any, form_secret_keys: Iterable[str] = (), path: str = "") -> list[str]:
    """Paths of argument values that look like secrets (non-empty values only)."""
    form_keys = frozenset(form_secret_keys)
    found: list[str] = []
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and value.strip():
                if key == "connection_string":
                    if connection_string_has_password(value):
                        found.append(where)
                    continue
                if is_secret_key(str(key), form_keys) or _looks_secret(value):
                    found.append(where)
            else:
                found.extend(find_secrets(value, form_keys, where))
    elif isinstance(arguments, list):
        for index, item in enumerate(arguments):
            found.extend(find_secrets(item, form_keys, f"{path}[{index}]"))
    elif isinstance(arguments, str) and _looks_secret(arguments):
        found.append(path or "(value)")
    return found


def _looks_secret(value: str) -> bool:
    return any(pattern.search(value) for pattern in SECRET_VALUE_PATTERNS)


def refusal(tool: str, paths: list[str]) -> str:
    fields = ", ".join(sorted(set(paths)))
    return f"Refused: {tool} was given secret values ({fields}). " + CONNECT_FLOW.replace("{{", "{").replace(
        "}}", "}"
    )


class Redactor:
    """Removes secrets from anything about to leave the server: secret-named keys, and known secret values."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def remember(self, values: Iterable[str]) -> None:
        # Very short values would redact ordinary words; real secrets are longer.
        self._known.update(value for value in values if isinstance(value, str) and len(value) >= 6)

    def remember_from(self, arguments: Any, form_secret_keys: Iterable[str] = ()) -> None:
        self.remember(_values_at(arguments, set(find_secrets(arguments, form_secret_keys))))

    def redact(self, value: Any, form_secret_keys: Iterable[str] = ()) -> Any:
        return self._redact(value, frozenset(form_secret_keys))

    def _redact(self, value: Any, form_keys: frozenset[str]) -> Any:
        if isinstance(value, dict):
            return {
                key: REDACTED
                if isinstance(item, str) and item and _is_secret_field(str(key), item, form_keys)
                else self._redact(item, form_keys)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._redact(item, form_keys) for item in value]
        if isinstance(value, str):
            return self.scrub(value)
        return value

    def scrub(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in SECRET_VALUE_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text


def _is_secret_field(key: str, value: str, form_keys: frozenset[str]) -> bool:
    if key == "connection_string":
        return connection_string_has_password(value)
    # `token`-like keys in results are ids and links we hand out on purpose (connect_url holds one).
    if _normal(key) in ("token", "csrftoken"):
        return False
    return is_secret_key(key, form_keys) and _normal(key) != "credentialid"


def _values_at(arguments: Any, paths: set[str], path: str = "") -> list[str]:
    values: list[str] = []
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            where = f"{path}.{key}" if path else str(key)
            if where in paths and isinstance(value, str):
                values.append(value)
            else:
                values.extend(_values_at(value, paths, where))
    elif isinstance(arguments, list):
        for index, item in enumerate(arguments):
            values.extend(_values_at(item, paths, f"{path}[{index}]"))
    return values
