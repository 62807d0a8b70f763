"""A wizard form parsed once into typed fields: one class per field type (a pydantic discriminated union).

The registry keeps each form in PostHog's camelCase shape, which the wizard answers as it is. Code that
needs to know what a field is (is it secret? which fields does it hold? how is it rendered or read back
from a posted form?) asks the field's class instead of looking at `field["type"]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Field(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = ""
    label: str | None = None
    required: bool = False
    caption: str | None = None
    placeholder: str | None = None
    secret: bool = False
    defaultValue: Any = None

    template: ClassVar[str] = "input"  # the macro of templates/connect/fields.html that renders it

    @property
    def is_secret(self) -> bool:
        """Its value is a secret: never shown, never stored in plain text."""
        return self.secret

    @property
    def is_container(self) -> bool:
        """It holds other values (a choice, a group, a tunnel, a sign-in): public itself, whatever it holds."""
        return False

    def children(self) -> tuple[FormField, ...]:
        return ()

    @property
    def display_label(self) -> str:
        return str(self.label or self.name or "This field")


class InputField(_Field):
    type: Literal["text", "email", "search", "url", "time", "number"] = "text"


class PasswordField(_Field):
    type: Literal["password"]

    @property
    def is_secret(self) -> bool:
        return True


class TextareaField(_Field):
    type: Literal["textarea"]
    template: ClassVar[str] = "textarea_field"


class FileFormat(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    format: str | None = None
    keys: list[str] | str | None = None


class FileUploadField(_Field):
    type: Literal["file-upload"]
    fileFormat: FileFormat | None = None
    template: ClassVar[str] = "file_upload"

    @property
    def is_secret(self) -> bool:
        return True

    @property
    def file_format(self) -> str:
        return (self.fileFormat.format if self.fileFormat else None) or ".json"


class Option(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    value: Any = ""
    label: str | None = None
    fields: tuple[FormField, ...] = ()


class _Container(_Field):
    """A choice, a group, a tunnel or a sign-in: public itself, whatever it holds."""

    @property
    def is_secret(self) -> bool:
        return False

    @property
    def is_container(self) -> bool:
        return True


class SelectField(_Container):
    type: Literal["select"]
    options: tuple[Option, ...] = ()
    template: ClassVar[str] = "select"

    def children(self) -> tuple[FormField, ...]:
        return tuple(child for option in self.options for child in option.fields)

    @property
    def has_option_fields(self) -> bool:
        """Some option brings fields of its own: the choice is posted as `<name>.selection`."""
        return any(option.fields for option in self.options)


class SwitchGroupField(_Container):
    type: Literal["switch-group"]
    default: bool = False
    fields: tuple[FormField, ...] = ()
    template: ClassVar[str] = "switch_group"

    def children(self) -> tuple[FormField, ...]:
        return self.fields


class SshTunnelField(_Container):
    type: Literal["ssh-tunnel"]
    template: ClassVar[str] = "ssh_tunnel"


class OAuthField(_Container):
    type: Literal["oauth"]
    template: ClassVar[str] = "oauth"


FormField = Annotated[
    InputField
    | PasswordField
    | TextareaField
    | FileUploadField
    | SelectField
    | SwitchGroupField
    | SshTunnelField
    | OAuthField,
    Field(discriminator="type"),
]
for _model in (Option, SelectField, SwitchGroupField):
    _model.model_rebuild()

_FIELDS = TypeAdapter(tuple[FormField, ...])
_KNOWN_TYPES = frozenset(
    {"text", "email", "search", "url", "time", "number", "password", "textarea", "file-upload", "select"}
    | {"switch-group", "ssh-tunnel", "oauth"}
)


def parse_fields(raw: Sequence[Mapping[str, Any]]) -> tuple[FormField, ...]:
    """Typed fields from a form definition's `fields` (a field without a `type` is a text input)."""
    return _FIELDS.validate_python(_with_types(raw))


@cache
def _cached(source_type: str) -> tuple[tuple[FormField, ...], tuple[FormField, ...]]:
    from warehouse_mcp.embedded.connectors import registry

    definition = registry.form_ref(source_type) or {}
    return parse_fields(definition.get("fields") or []), parse_fields(definition.get("webhookFields") or [])


def form_fields(source_type: str) -> tuple[FormField, ...]:
    """The source type's form, parsed once."""
    return _cached(source_type)[0]


def webhook_fields(source_type: str) -> tuple[FormField, ...]:
    return _cached(source_type)[1]


def _with_types(raw: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Nested fields get the default type too, so that every level is discriminated the same way."""
    typed: list[dict[str, Any]] = []
    for field in raw:
        item = {"type": "text", **field}
        if item["type"] not in _KNOWN_TYPES:
            item["type"] = "text"  # a type this backend does not know is typed in as text
        if isinstance(item.get("fields"), list):
            item["fields"] = _with_types(item["fields"])
        if isinstance(item.get("options"), list):
            item["options"] = [
                {**option, "fields": _with_types(option.get("fields") or [])}
                if isinstance(option, Mapping)
                else option
                for option in item["options"]
            ]
        typed.append(item)
    return typed
