"""ApiClient: the one HTTP client every tool goes through, to a real PostHog or the embedded backend.

Retries follow one rule: a request is repeated only when repeating it cannot do something twice.
Idempotent operations retry on 429/502/503/504 and transport errors; the others retry only when the
server certainly did not act (429, or a connection that was never made).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
NOT_PROCESSED_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_RETRY_AFTER = 30.0


@dataclass
class ApiError(Exception):
    """An error answer (or no answer) from the API, with what a model needs to act on it."""

    status: int | None  # None: the request never got an HTTP answer
    message: str
    attr: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ApiResponse:
    status: int
    data: Any  # parsed JSON, or None for an empty body


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        family: str = "projects",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "warehouse-mcp"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, transport=transport, timeout=timeout
        )
        self.family = family
        self.max_retries = max_retries
        self.backoff_base = backoff_base

    async def aclose(self) -> None:
        await self._http.aclose()

    def project_path(self, project: str, path: str) -> str:
        return f"/api/{self.family}/{path_segment(project, 'project id')}/{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        idempotent: bool,
    ) -> ApiResponse:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    method, path, params=tuple(params) if params else None, json=json
                )
            except httpx.InvalidURL as exc:
                raise ApiError(
                    None, f"The request URL could not be built ({exc}); check the ids and filters given."
                ) from exc
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, NOT_PROCESSED_ERRORS)
                if retryable and attempt <= self.max_retries:
                    await self._sleep(attempt, None)
                    continue
                raise ApiError(None, _transport_message(exc, self._http.base_url)) from exc
            retryable = idempotent or response.status_code == 429
            if retryable and response.status_code in RETRY_STATUSES and attempt <= self.max_retries:
                await self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            return _parse(response)

    async def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            # Exponential backoff with full jitter: spreads retries of many clients apart.
            delay = random.uniform(0, self.backoff_base * 2 ** (attempt - 1))
        log.info("retrying in %.2fs (attempt %d)", delay, attempt + 1)
        await anyio.sleep(min(delay, MAX_RETRY_AFTER))


def path_segment(value: str, what: str) -> str:
    """`value` as exactly one URL path segment: percent-encoded, never empty, never `.` or `..`.

    Ids come from a model's arguments; unescaped, `../` in one would send the request (with the API key)
    to another endpoint.
    """
    if value.strip(".") == "":
        raise ApiError(
            400, f"The {what} {value!r} is not valid; use the id exactly as a list or retrieve tool gave it."
        )
    return quote(value, safe="@")


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


def _transport_message(exc: httpx.TransportError, base_url: httpx.URL) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"The API at {base_url} did not answer in time ({type(exc).__name__}). Try again; if it persists, check POSTHOG_HOST."
    return f"Could not reach the API at {base_url}: {exc or type(exc).__name__}. Check POSTHOG_HOST and the network."


def _parse(response: httpx.Response) -> ApiResponse:
    data: Any = None
    if response.content:
        try:
            data = response.json()
        except ValueError:
            if response.is_success:
                raise ApiError(
                    response.status_code,
                    f"The API answered {response.status_code} with a body that is not JSON; is POSTHOG_HOST a PostHog instance?",
                ) from None
            data = None
    if response.is_success:
        return ApiResponse(response.status_code, data)
    raise _error(response, data)


def _error(response: httpx.Response, data: Any) -> ApiError:
    status = response.status_code
    message, attr, code = None, None, None
    if isinstance(data, dict):
        message = data.get("detail") or data.get("message") or data.get("error")
        attr = data.get("attr")
        code = data.get("code")
        if message is not None and not isinstance(message, str):
            message = str(message)
    if not message:
        snippet = response.text[:200].strip() if response.text else ""
        message = f"HTTP {status} {response.reason_phrase}" + (
            f": {snippet}" if snippet and "<html" not in snippet.lower() else ""
        )
    return ApiError(status, message, attr, code)
