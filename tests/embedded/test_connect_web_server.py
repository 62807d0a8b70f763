"""LoopbackServer: the embedded app on a real socket, started and stopped from synchronous code."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from warehouse_mcp.embedded.http.web_server import LoopbackServer, WebServerError


def hello_app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.path_params['name']}")

    return Starlette(routes=[Route("/hello/{name}", hello)])


def test_port_zero_serves_on_a_real_free_port_until_stopped() -> None:
    server = LoopbackServer(hello_app())
    server.start()
    try:
        assert server.running
        assert server.port and server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.base_url}/hello/you").text == "hello you"
        assert server.start() is server  # a second start is a no-op
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port or 1}/hello/you", timeout=2)
    with pytest.raises(WebServerError):
        _ = server.base_url
    server.stop()  # stopping twice is fine


def test_a_taken_port_is_a_clear_error() -> None:
    with LoopbackServer(hello_app()) as first:
        assert first.port is not None
        with pytest.raises(WebServerError, match=f"Cannot listen on 127.0.0.1:{first.port}"):
            LoopbackServer(hello_app(), port=first.port).start()


def test_a_server_can_start_again_after_stopping() -> None:
    server = LoopbackServer(hello_app())
    with server:
        first_url = server.base_url
    with server:
        assert httpx.get(f"{server.base_url}/hello/again").text == "hello again"
    assert first_url.startswith("http://127.0.0.1:")


def test_request_urls_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Connect URLs carry one-time tokens: no access log, even when someone turns uvicorn's logging up."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    try:
        with LoopbackServer(hello_app()) as server:
            for logger in loggers:
                logger.setLevel(logging.DEBUG)
            assert httpx.get(server.base_url + "/hello/one-time-token-3f9a").status_code == 200
            assert httpx.get(server.base_url + "/missing/one-time-token-3f9a").status_code == 404
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    server_records = [r for r in caplog.records if r.name.startswith(("uvicorn", "warehouse_mcp"))]
    assert all("one-time-token-3f9a" not in record.getMessage() for record in server_records)


def test_stop_returns_while_a_client_holds_a_connection_open() -> None:
    server = LoopbackServer(hello_app()).start()
    assert server.port is not None
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        server.stop()
        assert not server.running
    finally:
        idle.close()
