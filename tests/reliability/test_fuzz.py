"""Fuzz every tool with arguments drawn from its own input schema, mixed with hostile values.

Invariant: each call returns a CallToolResult, either a result or an error with a real message; never a
protocol error, a generic `Error executing tool X` (an unexpected exception), or an embedded-API 500.
Against the posthog backend every request must also stay inside `/api/projects/<project>/external_data_*`.
A last fuzz turns it around: valid arguments, and a PostHog host that answers JSON of any shape.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.conftest import fresh_postgres
from tests.fakes.recording_api import Recorded, RecordingApi, Reply
from tests.reliability.schema_strategies import (
    HOSTILE_STRINGS,
    JSON_VALUES,
    SchemaStrategies,
    arguments_for,
    minimal_instance,
    pool,
)
from tests.reliability.support import SyncClient, crash_reason, result_text, sync_client
from warehouse_mcp.arguments import INVALID_ARGUMENTS
from warehouse_mcp.harness import harness_settings
from warehouse_mcp.models import SourceType
from warehouse_mcp.operations import OPERATIONS
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

pytestmark = pytest.mark.reliability

EXAMPLES = 25
SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
# Destructive tools last, so the tools before them still find the seeded source.
TOOLS = [op.tool for op in sorted(OPERATIONS, key=lambda op: op.destructive)]
CONFINED = re.compile(r"^/api/projects/[^/]+/(external_data_(sources|schemas)|warehouse)/")

PATH_PARAMETERS = ("id", "project_id", "source_id")


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def plausible_reply(request: Recorded) -> Reply:
    """What PostHog would answer, shaped by the endpoint: enough for every tool to render a result."""
    path, method = request.path, request.method
    if method == "DELETE":
        return Reply(204)
    rest = path.split("/external_data_", 1)[-1]
    source = {
        "id": SID,
        "status": "Completed",
        "source_type": "Postgres",
        "schemas": [],
        "job_inputs": {"host": "db"},
    }
    if rest in ("sources/", "schemas/") and method == "GET":
        return Reply(200, {"count": 1, "next": None, "previous": None, "results": [source]})
    for suffix, body in (
        ("/jobs/", []),
        ("sources/stored_credentials/", [{"credential_id": "c1", "source_type": "Postgres"}]),
        ("sources/database_schema/", [{"table": "t", "should_sync": False}]),
        ("sources/connections/", [{"id": SID, "prefix": "p", "engine": "postgres"}]),
        ("/bulk_update_schemas/", [{"id": SID, "should_sync": False}]),
        ("sources/wizard/", {"Postgres": {"name": "Postgres", "fields": []}, "Stripe": {"name": "Stripe"}}),
        (
            "sources/connect_link/",
            {"connect_url": "https://example.invalid/connect/t", "source_type": "Postgres"},
        ),
        ("sources/source_prefix/", None),
        ("/reload/", None),
        ("/resync/", None),
        ("/cancel/", None),
    ):
        if path.endswith(suffix):
            return Reply(200, body)
    return Reply(200, source)


@pytest.fixture(scope="module")
def posthog() -> Iterator[tuple[SyncClient, RecordingApi]]:
    with RecordingApi() as api:
        api.responder = plausible_reply
        env = {"POSTHOG_PERSONAL_API_KEY": "phx_fuzz", "POSTHOG_HOST": api.url}
        settings_ = Settings.from_env(env).with_(max_retries=0, timeout_seconds=10.0)
        with sync_client(build_server(settings_)) as client:
            yield client, api


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[SyncClient, list[str]]]:
    """An ephemeral embedded backend holding one real Postgres source (so ids hit real rows)."""
    with fresh_postgres() as db:
        db.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, email text, updated_at timestamptz DEFAULT now())",
            "CREATE TABLE events (name text, happened date)",
            "INSERT INTO customers (email) SELECT 'u' || i FROM generate_series(1, 20) i",
        )
        with sync_client(build_server(harness_settings(connect_wait_seconds=1.0))) as client:
            stored = client.ok(
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": db.config},
            )
            spare = client.ok(
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": db.config},
            )
            source = client.ok(
                "data-warehouse-source-setup",
                {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            )
            retrieved = client.ok("external-data-sources-retrieve", {"id": source["id"]})
            ids = [source["id"], spare["credential_id"], *(schema["id"] for schema in retrieved["schemas"])]
            yield client, ids


def fuzz(client: SyncClient, tool: str, *, ids: Sequence[str] = (), on_call: Any = None) -> int:
    """Run EXAMPLES hostile calls of `tool`; returns how many got past argument validation."""
    some_id = st.one_of(
        pool([*ids, str(uuid.uuid4())]), st.sampled_from(HOSTILE_STRINGS), st.text(max_size=40)
    )
    fields = {name: some_id for name in ("id", "source_id", "schema_id", "credential_id")}
    fields["timeout_seconds"] = st.floats(min_value=1, max_value=2)  # a valid wait stays short
    # tools/list shows source_type as a string (43 values cost more context than they help): the fuzz knows them.
    fields["source_type"] = st.one_of(
        st.sampled_from([kind.value for kind in SourceType]), st.text(max_size=20)
    )
    strategy = arguments_for(client.tools[tool].input_schema, fields=fields)
    reached = 0

    @FUZZ_SETTINGS
    @given(arguments=strategy)
    def one_call(arguments: dict[str, Any]) -> None:
        nonlocal reached
        result = client.call(tool, arguments)
        reason = crash_reason(tool, result)
        assert reason is None, f"{tool}({str(arguments)[:500]}) gave {reason}"
        if not (result.is_error and INVALID_ARGUMENTS in result_text(result)):
            reached += 1
        if on_call is not None:
            on_call(arguments, result)

    one_call()
    return reached


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_survives_fuzzing_against_posthog(
    posthog: tuple[SyncClient, RecordingApi], tool: str
) -> None:
    client, api = posthog
    seen = len(api.requests)

    def confined(arguments: dict[str, Any], result: Any) -> None:
        nonlocal seen
        for request in api.requests[seen:]:
            assert CONFINED.match(request.path), (
                f"{tool}({str(arguments)[:300]}) sent {request.method} {request.path}"
            )
        seen = len(api.requests)

    reached = fuzz(client, tool, on_call=confined)
    assert reached > 0, (
        f"no fuzzed call of {tool} got past argument validation: the fuzz only probes the schema"
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_survives_fuzzing_against_embedded(
    embedded: tuple[SyncClient, list[str]], tool: str
) -> None:
    client, ids = embedded
    reached = fuzz(client, tool, ids=ids)
    assert reached > 0, f"no fuzzed call of {tool} got past argument validation"


def test_guard_the_fuzz_catches_a_crashing_tool(
    posthog: tuple[SyncClient, RecordingApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break the guarantee: a tool that raises on odd input must make the fuzz fail."""
    import warehouse_mcp.server as server_module

    real = server_module.find_secrets

    def fragile(arguments: Any, *args: Any) -> list[str]:
        if any(isinstance(value, str) and value and not value.isalnum() for value in arguments.values()):
            raise UnicodeError("odd input")
        return real(arguments, *args)

    monkeypatch.setattr(server_module, "find_secrets", fragile)
    client, _ = posthog
    with pytest.raises(AssertionError, match="unexpected exception"):
        fuzz(client, "external-data-sources-list")


def test_strategy_yields_schema_valid_arguments_when_not_hostile(
    posthog: tuple[SyncClient, RecordingApi],
) -> None:
    """The non-hostile strategy must produce arguments the schema accepts, or the fuzz tests nothing real."""
    import jsonschema

    from tests.reliability.schema_strategies import SchemaStrategies

    client, _ = posthog
    for tool in TOOLS:
        schema = client.tools[tool].input_schema
        strategy = SchemaStrategies(schema, hostile=False).arguments()

        @settings(max_examples=10, deadline=None, derandomize=True, database=None)
        @given(arguments=strategy)
        def valid(arguments: dict[str, Any]) -> None:
            jsonschema.validate(arguments, schema)  # noqa: B023 - runs before the loop moves on

        valid()


# --- what the fuzz found (each was a bug; kept as regression tests) --------------------------------------


@pytest.mark.parametrize(
    ("arguments", "tool"),
    [
        ({"id": "../external_data_schemas/6f1d2e3c"}, "external-data-sources-destroy"),
        ({"id": "x?limit=1#"}, "external-data-sources-destroy"),
        ({"id": SID, "project_id": "1/../../../admin"}, "external-data-sources-destroy"),
        ({"id": "%2e%2e/%2e%2e/admin"}, "external-data-sources-destroy"),
    ],
    ids=["dot-segments", "query-in-id", "project-escapes-api", "encoded-dots"],
)
def test_path_parameters_stay_inside_their_segment(
    posthog: tuple[SyncClient, RecordingApi], arguments: dict[str, Any], tool: str
) -> None:
    client, api = posthog
    seen = len(api.requests)
    result = client.call(tool, arguments)
    sent = [(request.method, request.path, request.query) for request in api.requests[seen:]]
    # Either refused before sending, or sent to the source path with the id as one (escaped) segment.
    for method, path, query in sent:
        assert method == "DELETE" and query == []
        assert re.fullmatch(r"/api/projects/[^/]+/external_data_sources/[^/]+/", path), path
        assert ".." not in path.split("/") and "%2e%2e" not in path.lower()
    assert sent or result.is_error


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("external-data-sources-retrieve", {"id": "a\x00b"}),
        ("external-data-sources-jobs-retrieve", {"id": "x" * 70_000}),
        ("external-data-sources-list", {"search": "x" * 70_000}),
        ("external-data-sources-wizard-retrieve", {"source_type": "é" * 30_000}),
    ],
    ids=["nul-in-id", "huge-id", "huge-search", "huge-query"],
)
@pytest.mark.parametrize("backend", ["posthog", "embedded"])
def test_url_values_that_httpx_refuses_give_a_clear_error(
    request: pytest.FixtureRequest, backend: str, tool: str, arguments: dict[str, Any]
) -> None:
    client, _ = request.getfixturevalue(backend)
    result = client.call(tool, arguments)
    assert crash_reason(tool, result) is None, result_text(result)[:300]


# --- hostile answers: the API (a proxy, a wrong host, a newer PostHog) answers JSON of any shape -------------

ANSWER_KEYS = (
    "id", "status", "results", "count", "next", "previous", "schemas", "schema", "connect_url",
    "credential_id", "source_type", "detail", "message", "attr", "code", "rows_synced",
    "should_sync", "sync_type", "last_synced_at", "latest_error",
)  # fmt: skip
ANSWERS = st.one_of(
    st.builds(Reply, st.just(200), JSON_VALUES),
    st.builds(Reply, st.sampled_from([200, 201]), st.dictionaries(st.sampled_from(ANSWER_KEYS), JSON_VALUES)),
    st.builds(Reply, st.sampled_from([204, 400, 401, 403, 404, 409, 500]), JSON_VALUES),
)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_survives_hostile_api_answers(posthog: tuple[SyncClient, RecordingApi], tool: str) -> None:
    client, api = posthog
    fields = {"timeout_seconds": st.just(1.0)}
    arguments = SchemaStrategies(client.tools[tool].input_schema, hostile=False, fields=fields).arguments()
    # Each poll of a "running" answer waits 3 s in sync-wait. No shrinking: a failure already names the
    # answers that broke the tool, and shrinking through HTTP round trips costs minutes.
    examples = 4 if tool == "data-warehouse-sync-wait" else EXAMPLES

    minimal = minimal_instance(client.tools[tool].input_schema)

    @settings(FUZZ_SETTINGS, max_examples=examples, phases=[Phase.explicit, Phase.generate])
    @given(arguments=arguments, answers=st.lists(ANSWERS, min_size=1, max_size=4))
    @example(arguments=minimal, answers=[Reply(200, None)])
    @example(arguments=minimal, answers=[Reply(200, [])])
    @example(arguments=minimal, answers=[Reply(200, "a string")])
    @example(arguments=minimal, answers=[Reply(200, {"results": 5, "count": "many", "schemas": 1})])
    def one_call(arguments: dict[str, Any], answers: list[Reply]) -> None:
        replies = iter(answers)
        api.responder = lambda request: next(replies, answers[-1])
        try:
            result = client.call(tool, arguments)
        finally:
            api.responder = plausible_reply
        reason = crash_reason(tool, result, api_500_is_crash=False)
        assert reason is None, f"{tool}({str(arguments)[:300]}) on answers {answers!r:.300} gave {reason}"

    one_call()
