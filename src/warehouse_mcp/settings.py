"""One Settings object: read from the environment, overridden by CLI flags, validated once at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

TOOLSETS = ("sources", "schemas", "credentials", "cdc", "webhooks", "jobs", "warehouse")
DEFAULT_HOST = "https://us.posthog.com"

Backend = Literal["embedded", "posthog"]
ToolMode = Literal["all", "discovery"]
TOOL_MODES = ("all", "discovery")


class SettingsError(ValueError):
    """A setting is wrong; the message names it and says how to fix it."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("warehouse-mcp", appauthor=False))


@dataclass(frozen=True)
class Settings:
    backend: Backend = "embedded"
    posthog_host: str = DEFAULT_HOST
    api_key: str | None = field(default=None, repr=False)
    project_id: str | None = None  # pinned project: tools then take no project argument
    api_family: Literal["projects", "environments"] = "projects"
    home: Path | None = None  # embedded data dir; None = platform default (or a temp dir when ephemeral)
    ephemeral: bool = False  # harness mode: a fresh data dir, removed on shutdown
    toolsets: tuple[str, ...] = TOOLSETS
    read_only: bool = False
    tool_mode: ToolMode = "all"  # discovery: three tools (search, schema, call) instead of one per operation
    allow_inline_secrets: bool = False
    connect_host: str = "127.0.0.1"
    connect_port: int = 0  # 0 = an ephemeral port picked on first need
    public_url: str | None = None  # where Stripe can reach the embedded webhook receiver
    run_scheduler: bool = True
    timeout_seconds: float = 30.0
    max_retries: int = 3
    connect_wait_seconds: float = 300.0  # how long a connect call waits for the user to finish the page
    result_char_budget: int = 24_000  # text returned to the model per call, before `_truncated`
    transcript_path: Path | None = None  # JSON-lines record of every tool call (harnesses)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build from WAREHOUSE_MCP_* / POSTHOG_* variables; keyword overrides (CLI flags) win."""
        env = os.environ if env is None else env
        api_key = env.get("POSTHOG_PERSONAL_API_KEY") or None
        values: dict[str, object] = {
            "api_key": api_key,
            "posthog_host": env.get("POSTHOG_HOST") or DEFAULT_HOST,
            "project_id": env.get("POSTHOG_PROJECT_ID") or None,
            "backend": env.get("WAREHOUSE_MCP_BACKEND") or ("posthog" if api_key else "embedded"),
            "api_family": env.get("WAREHOUSE_MCP_API_FAMILY") or "projects",
            "home": Path(env["WAREHOUSE_MCP_HOME"]).expanduser() if env.get("WAREHOUSE_MCP_HOME") else None,
            "ephemeral": _truthy(env.get("WAREHOUSE_MCP_EPHEMERAL")),
            "toolsets": parse_toolsets(env.get("WAREHOUSE_MCP_TOOLSETS")),
            "read_only": _truthy(env.get("WAREHOUSE_MCP_READ_ONLY")),
            "tool_mode": (env.get("WAREHOUSE_MCP_TOOL_MODE") or "all").strip().lower(),
            "allow_inline_secrets": _truthy(env.get("WAREHOUSE_MCP_ALLOW_INLINE_SECRETS")),
            "connect_host": env.get("WAREHOUSE_MCP_CONNECT_HOST") or "127.0.0.1",
            "connect_port": _int(env, "WAREHOUSE_MCP_CONNECT_PORT", 0),
            "public_url": env.get("WAREHOUSE_MCP_PUBLIC_URL") or None,
            "connect_wait_seconds": float(env.get("WAREHOUSE_MCP_CONNECT_WAIT") or 300),
            "transcript_path": Path(env["WAREHOUSE_MCP_TRANSCRIPT"])
            if env.get("WAREHOUSE_MCP_TRANSCRIPT")
            else None,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def with_(self, **changes: object) -> Settings:
        updated = replace(self, **changes)  # type: ignore[arg-type]
        updated.validate()
        return updated

    def validate(self) -> None:
        if self.backend not in ("embedded", "posthog"):
            raise SettingsError(
                f"WAREHOUSE_MCP_BACKEND must be 'embedded' or 'posthog', not {self.backend!r}."
            )
        if self.backend == "posthog" and not self.api_key:
            raise SettingsError(
                "The posthog backend needs POSTHOG_PERSONAL_API_KEY (a personal API key with the "
                "external_data_source:read and external_data_source:write scopes). "
                "Unset WAREHOUSE_MCP_BACKEND to use the embedded backend instead."
            )
        if not self.posthog_host.startswith(("http://", "https://")):
            raise SettingsError(f"POSTHOG_HOST must start with https:// (got {self.posthog_host!r}).")
        if self.project_id is not None and not re.fullmatch(r"[0-9]{1,18}|@current", self.project_id):
            raise SettingsError(f"POSTHOG_PROJECT_ID must be a number or @current (got {self.project_id!r}).")
        if self.api_family not in ("projects", "environments"):
            raise SettingsError("WAREHOUSE_MCP_API_FAMILY must be 'projects' or 'environments'.")
        unknown = [name for name in self.toolsets if name not in TOOLSETS]
        if unknown:
            raise SettingsError(
                f"Unknown toolset(s) {', '.join(unknown)} in WAREHOUSE_MCP_TOOLSETS; choose from {', '.join(TOOLSETS)}."
            )
        if self.tool_mode not in TOOL_MODES:
            raise SettingsError(
                f"WAREHOUSE_MCP_TOOL_MODE must be 'all' (one tool per operation) or 'discovery' (three tools: "
                f"search, schema, call), not {self.tool_mode!r}."
            )
        if not 0 <= self.connect_port <= 65535:
            raise SettingsError("WAREHOUSE_MCP_CONNECT_PORT must be between 0 and 65535.")

    @property
    def project(self) -> str:
        """The project used when a call names none."""
        return self.project_id or ("1" if self.backend == "embedded" else "@current")

    def resolved_home(self) -> Path:
        return self.home or default_home()


def parse_toolsets(value: str | None) -> tuple[str, ...]:
    if not value or value.strip().lower() in ("all", "default"):
        return TOOLSETS
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number (got {raw!r}).") from exc


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
