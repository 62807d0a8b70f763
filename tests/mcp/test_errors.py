"""Errors reach the model as isError results that say what to fix; retries are transparent; secrets are refused."""

from __future__ import annotations

import logging

import pytest
from mcp import Client

from tests.fakes.recording_api import RecordingApi, Reply
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
CANARY = "wmcp-canary-argument-77f1"


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


def settings(url: str, **extra: object) -> Settings:
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_k", "POSTHOG_HOST": url, "POSTHOG_PROJECT_ID": "42"}
    return Settings.from_env(env, **extra).with_(max_retries=3)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"id": SID, "sync_type": "sometimes"}, "sync_type"),  # wrong enum
        ({"sync_type": "append"}, "id"),  # missing id
        ({"id": SID, "should_sync": "maybe"}, "should_sync"),  # wrong type
        ({"id": SID, "colour": "red"}, "colour"),  # unknown argument
    ],
)
async def test_bad_arguments_say_what_to_fix(api: RecordingApi, arguments: dict, expected: str) -> None:
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-schemas-partial-update", arguments)
    assert result.is_error
    assert expected in result.content[0].text
    assert api.requests == []  # nothing was sent


@pytest.mark.anyio
async def test_validation_errors_never_echo_argument_values(api: RecordingApi) -> None:
    arguments = {"source_type": "Postgres", "payload": {"password": CANARY, "schemas": "not-a-list"}}
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-sources-create", arguments)
    assert result.is_error and "schemas" in result.content[0].text
    assert CANARY not in result.model_dump_json()


@pytest.mark.anyio
async def test_enum_error_lists_the_choices(api: RecordingApi) -> None:
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool(
            "external-data-schemas-partial-update", {"id": SID, "sync_frequency": "hourly"}
        )
    assert result.is_error and "'1hour'" in result.content[0].text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "needles"),
    [
        (
            Reply(
                400,
                {
                    "type": "validation_error",
                    "code": "invalid",
                    "detail": "Prefix already exists",
                    "attr": "prefix",
                },
            ),
            ["Prefix already exists", "HTTP 400", "field 'prefix'"],
        ),
        (Reply(400, {"message": "Schemas not given"}), ["Schemas not given"]),
        (
            Reply(
                403,
                {
                    "type": "authentication_error",
                    "code": "permission_denied",
                    "detail": "API key missing required scope",
                },
            ),
            ["external_data_source:write", "HTTP 403"],
        ),
        (
            Reply(404, {"type": "invalid_request", "code": "not_found", "detail": "Not found."}),
            [f"source {SID} in project 42", "external-data-sources-list"],
        ),
        (Reply(500, raw=b"<html>oops</html>"), ["HTTP 500"]),
    ],
)
async def test_api_errors_keep_the_message(api: RecordingApi, reply: Reply, needles: list[str]) -> None:
    api.reply(reply)
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert result.is_error
    for needle in needles:
        assert needle in result.content[0].text


@pytest.mark.anyio
async def test_read_scope_named_for_read_tools(api: RecordingApi) -> None:
    api.reply(Reply(401, {"type": "authentication_error", "detail": "Invalid personal API key."}))
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-sources-list", {})
    assert result.is_error and "external_data_source:read" in result.content[0].text


@pytest.mark.anyio
async def test_429_then_success_is_retried_transparently(api: RecordingApi) -> None:
    api.reply(
        Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"}),
        Reply(200, {"id": SID, "status": "Completed"}),
    )
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    assert not result.is_error
    assert result.structured_content["status"] == "Completed"
    assert len(api.requests) == 2


@pytest.mark.anyio
async def test_post_is_not_replayed_after_a_503(api: RecordingApi) -> None:
    """A 503 to a non-idempotent POST may have done the work: never send it twice."""
    api.reply(Reply(503, {"detail": "unavailable"}), Reply(200, {}))
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert result.is_error and "HTTP 503" in result.content[0].text
    assert len(api.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_secret_in_arguments_is_refused_and_never_echoed(
    api: RecordingApi, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    arguments = {
        "source_type": "Postgres",
        "payload": {
            "host": "db",
            "user": "u",
            "password": CANARY,
            "schemas": [{"name": "t", "should_sync": True}],
        },
    }
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        result = await client.call_tool("external-data-sources-create", arguments)
        stripe = await client.call_tool(
            "external-data-sources-update-webhook-inputs-create",
            {"id": SID, "inputs": {"note": "whsec_abcdefghijkl"}},
        )
    assert result.is_error and "data-warehouse-source-connect-link" in result.content[0].text
    assert "payload.password" in result.content[0].text
    assert stripe.is_error
    assert api.requests == []
    assert CANARY not in result.model_dump_json()
    assert CANARY not in caplog.text


@pytest.mark.anyio
async def test_inline_secrets_allowed_for_harnesses_but_redacted_in_results(api: RecordingApi) -> None:
    # The API (wrongly) echoes the secret back: the result must still not carry it.
    api.reply(
        Reply(400, {"message": f"could not connect with password {CANARY}"}),
        Reply(201, {"id": SID, "job_inputs": {"password": CANARY}}),
    )
    arguments = {"source_type": "Postgres", "payload": {"host": "db", "password": CANARY, "schemas": []}}
    async with Client(build_server(settings(api.url, allow_inline_secrets=True))) as client:
        failed = await client.call_tool("external-data-sources-create", arguments)
        created = await client.call_tool("external-data-sources-create", arguments)
    assert api.requests[0].body["payload"]["password"] == CANARY
    assert failed.is_error and CANARY not in failed.model_dump_json()
    assert not created.is_error and CANARY not in created.model_dump_json()


@pytest.mark.anyio
async def test_connection_string_with_password_is_refused(api: RecordingApi) -> None:
    api.reply(Reply(200, []))
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool(
            "external-data-sources-database-schema-create",
            {"source_type": "Postgres", "config": {"connection_string": "postgresql://u:hunter22@db/app"}},
        )
        fine = await client.call_tool(
            "external-data-sources-database-schema-create",
            {"source_type": "Postgres", "config": {"connection_string": "postgresql://u@db/app"}},
        )
    assert result.is_error and "config.connection_string" in result.content[0].text
    assert not fine.is_error


@pytest.mark.anyio
async def test_an_answer_of_the_wrong_shape_is_a_clear_error(api: RecordingApi) -> None:
    api.reply(Reply(200, {"unexpected": True}), Reply(200, None))
    async with Client(build_server(settings(api.url))) as client:
        listed = await client.call_tool("external-data-sources-list", {})
        emptied = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert listed.is_error and "where a list was expected" in listed.content[0].text
    assert not emptied.is_error and emptied.structured_content == {"ok": True, "status_code": 200}


@pytest.mark.anyio
async def test_argument_errors_name_the_field_what_was_expected_and_an_example(api: RecordingApi) -> None:
    async with Client(build_server(settings(api.url))) as client:
        result = await client.call_tool(
            "external-data-sources-list", {"limit": "plenty-of-rows", "offset": -5, "colour": "vermilion-7"}
        )
    text = result.content[0].text
    assert result.is_error and text.startswith(
        "external-data-sources-list: invalid arguments, nothing was done."
    )
    assert "- limit: expected a valid integer (Page size (default 100)). Example: 1." in text
    assert "- offset: expected a number greater than or equal to 0" in text and "Example: 1." in text
    assert "- colour: not an argument of this tool; allowed: limit, offset, search." in text
    assert "plenty-of-rows" not in text and "vermilion-7" not in text
    assert "pydantic" not in text and "http" not in text  # no library documentation links
    assert api.requests == []
