"""The request bodies the backend accepts, checked once by pydantic and refused in PostHog's words.

Two kinds, as on PostHog's server:
- `Serializer` bodies are those a DRF serializer reads (create, PATCH, bulk_update_schemas, …): a bad
  shape is `Invalid` with DRF's message and the field's path as `attr` ("schemas__0__id").
- `ActionBody` bodies are those a custom action reads by hand (database_schema, source_prefix, the CDC
  checks, update_webhook_inputs, store_credentials, create's `payload.schemas` entries): a bad shape is
  `Refused` with one sentence, the action's own words where it has them.

The rules in the domain (source_creation, schema_updates, …) get these typed values and check only what
depends on the stored state or the source.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.domain.errors import DomainError, Invalid, Refused
from warehouse_mcp.models import (
    FREQUENCY_SECONDS,
    AccessMethod,
    CdcManagementMode,
    CdcTableMode,
    CreatedVia,
    IncrementalFieldType,
    SyncType,
)


def one_of(values: Iterable[str]) -> BeforeValidator:
    """DRF's ChoiceField: anything but one of `values` is "not a valid choice" (null is left to the field)."""
    allowed = tuple(str(value) for value in values)

    def check(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in allowed):
            return value
        raise PydanticCustomError("invalid_choice", "not one of {choices}", {"choices": allowed})

    return BeforeValidator(check)


def empty_is(default: Any) -> BeforeValidator:
    """A hand-read `body.get(name) or default`: an empty value (null, "", [], 0, false) reads as `default`."""
    return BeforeValidator(lambda value: value or default)


def _field_error(message: str, code: str) -> PydanticCustomError:
    """A validator's own DRF field error, for a check no stock field makes: answered with these words and code."""
    return PydanticCustomError("drf", message, {"code": code})


def _time_of_day(value: Any) -> Any:
    """`HH:MM:SS` (UTC), normalised; PostHog refuses anything else, `12:00` included."""
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), "%H:%M:%S").time().isoformat()
    except ValueError:
        raise PydanticCustomError("time_of_day", "use HH:MM:SS (UTC)") from None


SourceTypeName = Annotated[str, one_of(registry.SOURCE_TYPES)]
AccessMethodName = Annotated[str, one_of(AccessMethod)]
CreatedViaName = Annotated[str, one_of(CreatedVia)]
SyncTypeName = Annotated[str, one_of(SyncType)]
FieldTypeName = Annotated[str, one_of(IncrementalFieldType)]
FrequencyName = Annotated[str, one_of(FREQUENCY_SECONDS)]
CdcTableModeName = Annotated[str, one_of(CdcTableMode)]
TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]


class Serializer(BaseModel):
    """A body a DRF serializer reads: unknown keys are ignored, a bad shape is DRF's field error."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _drf_error(exc.errors()[0]) from None

    def given(self, name: str) -> bool:
        """Was `name` in the body (null included)? PATCH changes only what was sent."""
        return name in self.model_fields_set


class ActionBody(Serializer):
    """A body a custom action reads by hand: a bad shape is refused with one sentence.

    A missing required field is "Missing required parameter: <field>"; `refusals` keeps an action's own
    words for any bad shape of a field, and `drf_fields` are those the action checks with a DRF field.
    """

    refusals: ClassVar[Mapping[str, str]] = {}
    drf_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        return cls.parse_for(data, "")

    @classmethod
    def parse_for(cls, data: Mapping[str, Any], where: str) -> Self:
        """`where` says whose body it is in the message, e.g. " for schema 'orders'"."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise cls._refusal(exc.errors()[0], where) from None

    @classmethod
    def _refusal(cls, error: ErrorDetails, where: str) -> DomainError:
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in cls.drf_fields:
            return _drf_error(error)
        if field in cls.refusals:
            return Refused(cls.refusals[field])
        return _action_error(error, where)


# --- sources ----------------------------------------------------------------------------------------


class SourceCreate(Serializer):
    source_type: SourceTypeName
    payload: dict[str, Any]
    prefix: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=400)
    access_method: AccessMethodName = AccessMethod.warehouse
    created_via: CreatedViaName = CreatedVia.api
    direct_query_enabled: bool | None = None


class NewSourceAction(ActionBody):
    """A custom action about a source not created yet: its type, and how it would be read."""

    refusals = {"source_type": "Missing required parameter: source_type"}

    source_type: str
    access_method: Any = None  # anything but "direct" reads as warehouse, as PostHog reads it

    @property
    def direct(self) -> bool:
        return bool(self.access_method == AccessMethod.direct)


class TablePreview(NewSourceAction):
    """database_schema: the tables of a source not created yet; its config is the rest of the body."""


class PrefixCheck(NewSourceAction):
    """source_prefix: would `prefix` be accepted for a new source of `source_type`?"""

    drf_fields = frozenset({"prefix"})

    source_type: str = Field(min_length=1)  # an empty type is missing too
    prefix: str | None = None


class SourceSetup(Serializer):
    source_type: SourceTypeName
    payload: dict[str, Any] | None = None
    prefix: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=400)
    direct_query_enabled: bool | None = None


class SourcePatch(Serializer):
    prefix: str | None = None
    description: str | None = Field(None, max_length=400)
    access_method: AccessMethodName | None = None
    direct_query_enabled: bool | None = None
    job_inputs: dict[str, Any] | None = None


class RevenueConfig(Serializer):
    enabled: bool | None = None
    include_invoiceless_charges: bool | None = None


# --- schemas ----------------------------------------------------------------------------------------


class SchemaSettings(Serializer):
    """What a schema PATCH and a bulk_update_schemas entry may change."""

    should_sync: bool | None = None
    sync_type: SyncTypeName | None = None
    incremental_field: str | None = None
    incremental_field_type: FieldTypeName | None = None
    sync_frequency: FrequencyName | None = None
    primary_key_columns: list[str] | None = None
    incremental_field_lookback_seconds: int | None = None
    cdc_table_mode: CdcTableModeName | None = None
    enabled_columns: list[str] | None = None
    sync_time_of_day: TimeOfDay | None = None


class BulkSchemaEntry(SchemaSettings):
    id: uuid.UUID

    @model_validator(mode="before")
    @classmethod
    def _primary_key_is_not_bulk(cls, data: Any) -> Any:
        # PostHog's bulk serializer has no primary_key_columns: an entry's is ignored, not applied.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key != "primary_key_columns"}
        return data


class BulkSchemaUpdate(Serializer):
    schemas: list[BulkSchemaEntry] = Field(min_length=1)


class SchemaChoice(ActionBody):
    """One entry of create's `payload.schemas` (its name is checked against discovery, not here)."""

    name: str | None = None
    should_sync: bool = False
    sync_type: SyncTypeName | None = None
    incremental_field: str | None = None
    incremental_field_type: FieldTypeName | None = None
    primary_key_columns: list[str] | None = None
    sync_time_of_day: TimeOfDay | None = None
    enabled_columns: list[str] | None = None
    cdc_table_mode: CdcTableModeName | None = None


# --- credentials, CDC, webhooks, warehouse reads -----------------------------------------------------


class StoredCredentials(ActionBody):
    """store_credentials: a source type's connection fields, checked and kept for a later setup."""

    refusals = {
        "source_type": "Missing required parameter: source_type",
        "payload": "'payload' must be an object of the source's connection fields",
    }

    source_type: str = Field(min_length=1)
    payload: dict[str, Any] | None = None


class CdcSettings(ActionBody):
    """check_cdc_prerequisites_for_source: the CDC settings to check the source's database for."""

    refusals = {"cdc_management_mode": "cdc_management_mode must be 'posthog' or 'self_managed'."}

    cdc_management_mode: Annotated[
        str, one_of(CdcManagementMode), empty_is(CdcManagementMode.posthog.value)
    ] = CdcManagementMode.posthog.value
    cdc_slot_name: Annotated[str | None, empty_is(None)] = None
    cdc_publication_name: Annotated[str | None, empty_is(None)] = None


class CdcConfigCheck(CdcSettings):
    """check_cdc_prerequisites: the settings and tables to check; the config is the rest of the body."""

    refusals = {
        **CdcSettings.refusals,
        "tables": "'tables' must be a list of table names (schema.table or table).",
    }

    tables: Annotated[list[str], empty_is([])] = Field(default_factory=list)
    source_type: Any = None  # whether it has CDC is the rule's question


class WebhookInputs(ActionBody):
    """update_webhook_inputs: some of the form's webhook inputs, by name."""

    refusals = {"inputs": "No inputs provided"}

    inputs: dict[str, Any] = Field(min_length=1)


MAX_SQL_CHARACTERS = 20_000


def _sql(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise _field_error("Send the SQL to run as `sql` (one SELECT statement).", "required")
    if len(value) > MAX_SQL_CHARACTERS:
        raise _field_error(f"The SQL is longer than {MAX_SQL_CHARACTERS} characters.", "max_length")
    return value


class WarehouseQuery(Serializer):
    """warehouse/query (embedded only): one read-only SQL statement."""

    sql: Annotated[str, BeforeValidator(_sql)] = Field(None, validate_default=True)


# --- errors in PostHog's words ----------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return type(value).__name__


# DRF's message and code for each pydantic error type.
_DRF: dict[str, tuple[str, str]] = {
    "missing": ("This field is required.", "required"),
    "invalid_choice": ('"{input}" is not a valid choice.', "invalid_choice"),
    "string_type": ("Not a valid string.", "invalid"),
    "string_too_long": ("Ensure this field has no more than {max_length} characters.", "max_length"),
    "bool_type": ("Must be a valid boolean.", "invalid"),
    "bool_parsing": ("Must be a valid boolean.", "invalid"),
    "int_type": ("A valid integer is required.", "invalid"),
    "int_parsing": ("A valid integer is required.", "invalid"),
    "int_from_float": ("A valid integer is required.", "invalid"),
    "uuid_type": ("Must be a valid UUID.", "invalid"),
    "uuid_parsing": ("Must be a valid UUID.", "invalid"),
    "dict_type": ('Expected a dictionary of items but got type "{input_type}".', "not_a_dict"),
    "list_type": ('Expected a list of items but got type "{input_type}".', "not_a_list"),
    "too_short": ("This list may not be empty.", "empty"),
    "model_type": ("Invalid data. Expected a dictionary, but got {input_type}.", "invalid"),
}


def _drf_error(error: ErrorDetails) -> Invalid:
    attr = "__".join(str(part) for part in error["loc"])
    value = error.get("input")
    if error["type"] == "drf":
        return Invalid(error["msg"], attr, error.get("ctx", {})["code"])
    if error["type"] == "time_of_day":
        return Invalid("Invalid sync time of day")  # PostHog's serializer-level check: no field
    if value is None and error["type"] != "missing":
        return Invalid("This field may not be null.", attr, "null")
    template, code = _DRF.get(error["type"], ("{msg}", "invalid"))
    context = {**error.get("ctx", {}), "input": value, "input_type": _type_name(value), "msg": error["msg"]}
    return Invalid(template.format(**context), attr, code)


def _action_error(error: ErrorDetails, where: str) -> Refused:
    field = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    if error["type"] == "missing":
        return Refused(f"Missing required parameter: {field}")
    if error["type"] == "invalid_choice":
        choices = ", ".join(error.get("ctx", {})["choices"])
        return Refused(f"Unknown {field} '{value}'{where}. Use one of: {choices}.")
    problem = error["msg"] if error["type"] == "time_of_day" else _drf_error(error).message
    return Refused(f"Invalid {field}{where}: {problem.rstrip('.')}.")
