"""TLS to the database: the form's choices, read in one place for every client library.

Postgres: `ssl_mode` (disable, prefer — the default, require, verify-ca, verify-full) with an optional
CA certificate `ssl_ca` (PEM) for the verify modes; a connection string's `sslmode`/`sslrootcert` count
too, and the stronger mode of the two wins. MySQL: `using_ssl` ("true" → encrypted), then `ssl_mode`
(require = encrypted without checking the certificate, the default; verify-ca; verify-full) and `ssl_ca`.
An SSH tunnel with `require_tls` makes TLS required whatever the form says. Without a CA the verify
modes trust the system's CAs.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from warehouse_mcp.embedded.connectors.base import SourceError

POSTGRES_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MYSQL_MODES = ("require", "verify-ca", "verify-full")
VERIFY_MODES = ("verify-ca", "verify-full")


def _strength(mode: str) -> int:
    return POSTGRES_MODES.index(mode) if mode in POSTGRES_MODES else -1


def _mode(config: Mapping[str, Any], allowed: tuple[str, ...]) -> str | None:
    value = str(config.get("ssl_mode") or "").strip().lower()
    if not value:
        return None
    if value not in allowed:
        raise SourceError(f"TLS mode must be one of: {', '.join(allowed)} (got '{value}')")
    return value


def _ca_pem(config: Mapping[str, Any]) -> str | None:
    pem = str(config.get("ssl_ca") or "").strip()
    if not pem:
        return None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise SourceError("The CA certificate must be PEM text, starting with -----BEGIN CERTIFICATE-----")
    return pem + "\n"


@cache
def _ca_directory() -> Path:
    # Private to this process (0700): libpq reads the CA from a file, and no other user may swap it.
    return Path(tempfile.mkdtemp(prefix="warehouse-mcp-ca-"))


def ca_file(pem: str) -> str:
    """A file holding the CA certificate (public data), for libraries that only take a path."""
    path = _ca_directory() / f"{hashlib.sha256(pem.encode()).hexdigest()[:32]}.pem"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(pem)
        partial.replace(path)
    return str(path)


def libpq_settings(config: Mapping[str, Any], params: Mapping[str, Any], *, require: bool) -> dict[str, str]:
    """`sslmode` (and `sslrootcert`) for libpq from the form, the connection string's `params` and the
    tunnel's `require_tls`."""
    modes = [_mode(config, POSTGRES_MODES), params.get("sslmode"), "require" if require else None]
    mode = max((str(m) for m in modes if m), key=_strength, default="prefer")
    settings = {"sslmode": mode}
    pem = _ca_pem(config)
    if pem:
        settings["sslrootcert"] = ca_file(pem)
    elif mode in VERIFY_MODES and not params.get("sslrootcert"):
        settings["sslrootcert"] = "system"
    return settings


@dataclass(frozen=True)
class MysqlTls:
    """The MySQL TLS choice: `mode` None means a plain connection."""

    mode: str | None
    ca_pem: str | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext | None:
        if self.mode is None:
            return None
        try:
            context = (
                ssl.create_default_context(cadata=self.ca_pem)
                if self.ca_pem
                else ssl.create_default_context()
            )
        except ssl.SSLError as error:
            raise SourceError(f"The CA certificate could not be read: {error.reason or error}") from None
        if self.mode != "verify-full":
            context.check_hostname = False
        if self.mode == "require":
            # Encrypted without checking the certificate: MySQL servers commonly use self-signed ones.
            context.verify_mode = ssl.CERT_NONE
        return context


def mysql_settings(config: Mapping[str, Any], *, require: bool) -> MysqlTls:
    using_ssl = config.get("using_ssl", "true")
    enabled = (
        using_ssl
        if isinstance(using_ssl, bool)
        else str(using_ssl).strip().lower() in ("true", "1", "yes", "on")
    )
    mode = _mode(config, MYSQL_MODES) if enabled else None
    if enabled and mode is None:
        mode = "require"
    if require and mode is None:
        mode = "require"
    pem = _ca_pem(config) if mode in VERIFY_MODES else None
    return MysqlTls(mode=mode, ca_pem=pem)
