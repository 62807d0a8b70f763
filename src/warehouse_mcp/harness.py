"""The public API for agent test harnesses.

- `build_server(settings)` (re-exported) gives an in-process MCP server for `mcp.Client(server)`.
- `harness_settings(...)` is Settings for a harness: embedded backend, ephemeral data dir, inline secrets on.
- `EmbeddedApi` runs the embedded PostHog-compatible API on a free loopback port, for harnesses in other
  languages (they use it as POSTHOG_HOST with `token` as the personal API key).
- `complete_connect_page(url, fields)` fills and submits a connect page over plain HTTP, so a harness can
  script the secret-free connect flow without a browser.

Nothing here is global: two servers or two APIs in one process share no state.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .server import build_server
from .settings import Settings

__all__ = ["ConnectPageError", "EmbeddedApi", "build_server", "complete_connect_page", "harness_settings"]


def harness_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Settings for a harness run: embedded, fresh temporary data dir unless `home` is given, inline secrets allowed."""
    values: dict[str, Any] = {
        "backend": "embedded",
        "home": home,
        "ephemeral": home is None,
        "allow_inline_secrets": True,
        "connect_wait_seconds": 60.0,
    }
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    return settings


class EmbeddedApi:
    """The embedded API on 127.0.0.1:<port>; `with EmbeddedApi() as api:` then use `api.url` and `api.token`."""

    def __init__(self, home: Path | None = None, *, port: int = 0, run_scheduler: bool = True) -> None:
        self._owns_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="warehouse-mcp-api-"))
        self.token = "wmcp_" + secrets.token_urlsafe(24)
        self._port = port
        self._run_scheduler = run_scheduler
        self._backend: Any = None
        self._server: Any = None
        self.url = ""

    def start(self) -> EmbeddedApi:
        from .embedded.backend import EmbeddedBackend
        from .embedded.http.web_server import LoopbackServer

        self._backend = EmbeddedBackend(self.home, api_token=self.token, run_scheduler=self._run_scheduler)
        self._backend.start()
        self._server = LoopbackServer(self._backend.app, "127.0.0.1", self._port).start()
        self.url = self._server.base_url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._owns_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def settings(self, **overrides: Any) -> Settings:
        """Settings for an MCP server that talks to this API as if it were PostHog."""
        values: dict[str, Any] = {
            "backend": "posthog",
            "posthog_host": self.url,
            "api_key": self.token,
            "project_id": "1",
            "allow_inline_secrets": True,
        }
        values.update(overrides)
        return Settings(**values)

    def __enter__(self) -> EmbeddedApi:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ConnectPageError(RuntimeError):
    """The connect page refused the submission; the message is the page's own error text."""


class _FormReader(HTMLParser):
    """Collects the default value of every named control of the page's form."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.errors: list[str] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        name = attr.get("name")
        if tag == "input" and name:
            kind = attr.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attr:
                    self.values[name] = attr.get("value") or "on"
            elif kind != "submit":
                self.values.setdefault(name, attr.get("value", ""))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            if "selected" in attr or self._select not in self.values:
                self.values[self._select] = attr.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values.setdefault(name, "")
        if "error" in attr.get("class", "") or attr.get("role") == "alert":
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data
        if self._in_error and data.strip():
            self.errors.append(data.strip())


def complete_connect_page(connect_url: str, fields: dict[str, Any], *, timeout: float = 30.0) -> str:
    """Fill the connect page at `connect_url` with `fields` (form input names → values) and submit it.

    Returns the stored credential id. Raises ConnectPageError with the page's message when the source
    refuses the credentials or the link is no longer valid.
    """
    with httpx.Client(timeout=timeout, follow_redirects=True) as http:
        page = http.get(connect_url)
        if page.status_code != 200:
            raise ConnectPageError(f"The connect page answered {page.status_code}: {_text(page.text)}")
        reader = _FormReader()
        reader.feed(page.text)
        data = {**reader.values, **{key: _form_value(value) for key, value in fields.items()}}
        data = {key: value for key, value in data.items() if value is not None}
        posted = http.post(connect_url, data=data)
        if posted.status_code != 200:
            errors = _FormReader()
            errors.feed(posted.text)
            message = " ".join(errors.errors) or _text(posted.text)
            raise ConnectPageError(
                f"The connect page refused the submission ({posted.status_code}): {message}"
            )
        status = http.get(connect_url.rstrip("/") + "/status").json()
    if status.get("state") != "completed" or not status.get("credential_id"):
        raise ConnectPageError(f"The connect page did not complete: {status}")
    return str(status["credential_id"])


def _form_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else None
    return str(value)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()[:300]
