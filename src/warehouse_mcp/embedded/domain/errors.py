"""The domain's errors: what was wrong, in the domain's words.

`http/errors.py` answers them in PostHog's shapes (DRF's `{"type", "code", "detail", "attr"}` for `Invalid`
and `NotFound`, a custom action's `{"message"}` for `Refused` and `Conflict`); nothing here knows HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the rules refuse; `message` says what was wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """The request breaks a rule, as a whole or in one `field` (its path joined with `__`).

    `code` names the broken rule (DRF's: "required", "invalid_choice", …); without one, a field's own
    check is "invalid" and a rule about the whole request "invalid_input", as PostHog answers.
    """

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.code = code or ("invalid" if field else "invalid_input")


class NotFound(DomainError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class Refused(DomainError):
    """An action cannot be done as asked (a source refused it, a setting does not allow it, …)."""


class Conflict(Refused):
    """An action cannot be done now because of the state something is in."""
