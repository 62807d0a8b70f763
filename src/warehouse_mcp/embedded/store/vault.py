"""Secrets at rest: Fernet (AES-128-CBC with an HMAC-SHA256 tag) under a key file kept beside, not inside, the database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "vault.key"


class VaultError(Exception):
    pass


class Vault:
    def __init__(self, home: Path) -> None:
        self._fernet = Fernet(_load_or_create_key(home / KEY_FILE))

    def encrypt(self, value: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(value).encode())

    def decrypt(self, token: bytes | None) -> Any:
        if token is None:
            return None
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise VaultError(
                "Stored secrets cannot be decrypted: the vault key does not match this data directory."
            ) from exc


def _load_or_create_key(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    # Write aside, then link into place: two processes starting together on a fresh directory
    # agree on one key, and nobody ever reads a half-written key file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        tmp.unlink()
    return key
