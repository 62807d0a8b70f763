"""http/errors.py answers each domain error in the shape PostHog gives it."""

from __future__ import annotations

from typing import Any

import pytest

from warehouse_mcp.embedded.domain.connector_access import SourceRefused
from warehouse_mcp.embedded.domain.errors import Conflict, DomainError, Invalid, NotFound, Refused
from warehouse_mcp.embedded.http.errors import domain_answer


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            Invalid("Prefix is invalid", "prefix"),
            400,
            {"type": "validation_error", "code": "invalid", "detail": "Prefix is invalid", "attr": "prefix"},
        ),
        (
            Invalid("Pick one sync type"),
            400,
            {
                "type": "validation_error",
                "code": "invalid_input",
                "detail": "Pick one sync type",
                "attr": None,
            },
        ),
        (
            Invalid("This field is required.", "payload__host", "required"),
            400,
            {
                "type": "validation_error",
                "code": "required",
                "detail": "This field is required.",
                "attr": "payload__host",
            },
        ),
        (
            NotFound(),
            404,
            {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None},
        ),
        (Refused("Source type already exists"), 400, {"message": "Source type already exists"}),
        (SourceRefused("Could not connect"), 400, {"message": "Could not connect"}),
        (Conflict("A sync is running"), 409, {"message": "A sync is running"}),
    ],
)
def test_each_domain_error_has_its_posthog_shape(
    error: DomainError, status: int, body: dict[str, Any]
) -> None:
    answer = domain_answer(error)
    assert (answer.status, answer.body) == (status, body)
    assert str(error) == error.message
