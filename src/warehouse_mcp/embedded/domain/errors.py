"""API errors of the embedded backend, in the two shapes PostHog answers with.

Standard CRUD answers DRF's shape `{"type", "code", "detail", "attr"}`; most custom actions answer
`{"message": ...}`. Handlers raise `ErrorAnswer`; the app turns it into the JSON response.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorType = Literal[
    "validation_error", "invalid_request", "authentication_error", "throttled_error", "server_error"
]


class ErrorAnswer(Exception):
    """An error answer: `status` plus the JSON `body` to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail") or body.get("message") or f"HTTP {status}")
        self.status = status
        self.body = body


def drf_error(
    status: int, error_type: ErrorType, detail: str, code: str = "invalid", attr: str | None = None
) -> ErrorAnswer:
    return ErrorAnswer(status, {"type": error_type, "code": code, "detail": detail, "attr": attr})


def validation_error(detail: str, attr: str | None = None, code: str | None = None) -> ErrorAnswer:
    """400 in DRF shape: a field (`attr`, path joined with `__`) or the whole request is invalid.

    A rule about the whole request answers PostHog's `invalid_input`; a field's own check `invalid`.
    """
    return drf_error(400, "validation_error", detail, code or ("invalid" if attr else "invalid_input"), attr)


def message_error(message: str, status: int = 400) -> ErrorAnswer:
    """The `{"message": ...}` shape of custom actions."""
    return ErrorAnswer(status, {"message": message})


def not_found() -> ErrorAnswer:
    return drf_error(404, "invalid_request", "Not found.", "not_found")


def method_not_allowed(method: str) -> ErrorAnswer:
    return drf_error(405, "invalid_request", f'Method "{method}" not allowed.', "method_not_allowed")


def parse_error(reason: str) -> ErrorAnswer:
    return drf_error(400, "invalid_request", f"JSON parse error - {reason}", "parse_error")


def not_authenticated() -> ErrorAnswer:
    return drf_error(
        401, "authentication_error", "Authentication credentials were not provided.", "not_authenticated"
    )


def authentication_failed() -> ErrorAnswer:
    return drf_error(401, "authentication_error", "Invalid personal API key.", "authentication_failed")


def server_error() -> ErrorAnswer:
    return drf_error(500, "server_error", "A server error occurred.", "error")


# DRF's field-level validation messages, so clients that parse them see the familiar wording.
def required(attr: str) -> ErrorAnswer:
    return validation_error("This field is required.", attr, "required")


def invalid_choice(value: Any, attr: str) -> ErrorAnswer:
    return validation_error(f'"{value}" is not a valid choice.', attr, "invalid_choice")


def not_a_dict(value: Any, attr: str) -> ErrorAnswer:
    return validation_error(
        f'Expected a dictionary of items but got type "{type(value).__name__}".', attr, "not_a_dict"
    )


def not_a_list(value: Any, attr: str) -> ErrorAnswer:
    return validation_error(
        f'Expected a list of items but got type "{type(value).__name__}".', attr, "not_a_list"
    )


def not_a_string(attr: str) -> ErrorAnswer:
    return validation_error("Not a valid string.", attr, "invalid")


def not_a_boolean(attr: str) -> ErrorAnswer:
    return validation_error("Must be a valid boolean.", attr, "invalid")


def too_long(attr: str, max_length: int) -> ErrorAnswer:
    return validation_error(
        f"Ensure this field has no more than {max_length} characters.", attr, "max_length"
    )
