"""Argument completion: declared as a capability, source types for the resource template and the prompt,
source ids from the API, in both protocol generations."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from tests.fakes.recording_api import RecordingApi, Reply
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

pytestmark = pytest.mark.anyio
MODES = pytest.mark.parametrize("mode", ["legacy", "auto"])
TEMPLATE = ResourceTemplateReference(type="ref/resource", uri="warehouse://source-types/{source_type}")
IDS = ["0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11", "6f1d2e3c-7b8a-4c9d-8e0f-1a2b3c4d5e6f"]


@pytest.fixture
def api():
    with RecordingApi() as server:
        yield server


def settings(url: str) -> Settings:
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_k", "POSTHOG_HOST": url, "POSTHOG_PROJECT_ID": "42"}
    return Settings.from_env(env)


@MODES
async def test_source_types_complete_for_the_template_and_the_prompt(api: RecordingApi, mode: str) -> None:
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        assert client.server_capabilities is not None
        assert client.server_capabilities.completions is not None
        template = await client.complete(TEMPLATE, {"name": "source_type", "value": "po"})
        prompt = await client.complete(
            PromptReference(type="ref/prompt", name="connect-source"), {"name": "source_type", "value": "My"}
        )
        inside = await client.complete(TEMPLATE, {"name": "source_type", "value": "sql"})
    assert template.completion.values == [
        "Postgres",
        "Polar",
        "Hubspot",
        "TemporalIO",
    ]  # starts, then contains
    assert prompt.completion.values == ["MySQL"]
    assert inside.completion.values == ["MySQL", "MSSQL"]
    assert api.requests == []


@MODES
async def test_source_ids_complete_from_the_api(api: RecordingApi, mode: str) -> None:
    api.default = Reply(200, {"count": 2, "next": None, "results": [{"id": IDS[0]}, {"id": IDS[1]}]})
    ref = PromptReference(type="ref/prompt", name="diagnose-failing-sync")
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        every = await client.complete(ref, {"name": "source_id", "value": ""})
        one = await client.complete(ref, {"name": "source_id", "value": "6f1"})
    assert every.completion.values == IDS and every.completion.total == 2
    assert one.completion.values == [IDS[1]]
    assert {(r.method, r.path) for r in api.requests} == {("GET", "/api/projects/42/external_data_sources/")}
    assert ("limit", "100") in api.requests[0].query


@MODES
async def test_an_unreachable_api_gives_no_completions_rather_than_an_error(
    api: RecordingApi, mode: str
) -> None:
    api.default = Reply(403, {"detail": "no"})
    async with Client(build_server(settings(api.url)), mode=mode) as client:
        answer = await client.complete(
            PromptReference(type="ref/prompt", name="diagnose-failing-sync"),
            {"name": "source_id", "value": ""},
        )
    assert answer.completion.values == []
