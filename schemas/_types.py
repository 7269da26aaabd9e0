"""Bounded field types shared by the envelope and the kinds.

Every string, list and number in the contract has a bound, so no single field can carry
megabytes. Patterns use only ASCII classes (``[0-9]``, not ``\\d``) so that the pydantic (Rust
regex) and JSON Schema (ECMA 262) readings of the same pattern agree.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from schemas.text import MULTI_LINE_PATTERN, SINGLE_LINE_PATTERN

#: Shared by every model of the contract: immutable, strict (no coercion), unknown keys refused.
STRICT_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# RFC 3339 date-time with a mandatory offset, years 2000-2099, at most microseconds.
_DATE_TIME = (
    "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?"
)
_OFFSET = "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = _DATE_TIME + _OFFSET + "$"
_NAIVE_PATTERN = _DATE_TIME + "$"
# A string matching this but not TIMESTAMP_PATTERN is exactly one matching _NAIVE_PATTERN.
_MAYBE_NAIVE_PATTERN = _DATE_TIME + _OFFSET + "?$"
SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{2,63}$"

_UUID_RE = re.compile(UUID_PATTERN.replace("$", r"\Z"))
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN.replace("$", r"\Z"))
_NAIVE_RE = re.compile(_NAIVE_PATTERN.replace("$", r"\Z"))


_UUID_ERROR, _UUID_MESSAGE = (
    "uuid_format",
    "must be a UUID written as 8-4-4-4-12 hexadecimal digits",
)
_OFFSET_ERROR, _OFFSET_MESSAGE = (
    "timestamp_offset",
    "timestamp must carry a UTC offset, e.g. Z or +01:00",
)
_TIMESTAMP_ERROR, _TIMESTAMP_MESSAGE = (
    "timestamp_format",
    "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-29T10:15:00+00:00",
)


# JSON (every event: `schemas.parsing` validates JSON, a dict included) is judged by
# pydantic-core alone, no Python per field: the one string form as a pattern (Rust regex) on a
# strict string, each failure with its own error type and message (`custom_error_schema`), then
# pydantic's own parsing of that string. A Python value (a model built in Python) goes through
# the two checks below instead, which admit the same strings or an already-typed value.
def _check_uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise PydanticCustomError(_UUID_ERROR, _UUID_MESSAGE)
    return value


def _check_timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIMESTAMP_RE.match(value):
        if isinstance(value, str) and _NAIVE_RE.match(value):
            raise PydanticCustomError(_OFFSET_ERROR, _OFFSET_MESSAGE)
        raise PydanticCustomError(_TIMESTAMP_ERROR, _TIMESTAMP_MESSAGE)
    return value


def _must_match(pattern: str, error: str, message: str) -> core_schema.CoreSchema:
    return core_schema.custom_error_schema(
        core_schema.str_schema(pattern=pattern, strict=True),
        custom_error_type=error,
        custom_error_message=message,
    )


def _uuid_schema(_source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    uuid = core_schema.uuid_schema(strict=False)
    return core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(
            [_must_match(UUID_PATTERN, _UUID_ERROR, _UUID_MESSAGE), uuid]
        ),
        python_schema=core_schema.no_info_before_validator_function(_check_uuid, uuid),
    )


def _timestamp_schema(_source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    aware = core_schema.datetime_schema(strict=False, tz_constraint="aware")
    return core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(
            [
                # not even a timestamp without its offset: the format error; else no offset
                _must_match(_MAYBE_NAIVE_PATTERN, _TIMESTAMP_ERROR, _TIMESTAMP_MESSAGE),
                _must_match(TIMESTAMP_PATTERN, _OFFSET_ERROR, _OFFSET_MESSAGE),
                aware,
            ]
        ),
        python_schema=core_schema.no_info_before_validator_function(_check_timestamp, aware),
    )


EventId = Annotated[
    UUID,
    GetPydanticSchema(get_pydantic_core_schema=_uuid_schema),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]
Timestamp = Annotated[
    datetime,
    GetPydanticSchema(get_pydantic_core_schema=_timestamp_schema),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, min_length=3, max_length=64)]


def _one_zero(value: float) -> float:
    # -0.0 and 0.0 are one number, which JSON spells two ways and jsonb (numeric, no negative
    # zero) gives back one way: keep that one, so the body hashed is the body stored.
    return value + 0.0


Latitude = Annotated[float, Field(ge=-90, le=90), AfterValidator(_one_zero)]
Longitude = Annotated[float, Field(ge=-180, le=180), AfterValidator(_one_zero)]


def text(max_length: int, *, multi_line: bool = False) -> Any:
    """A non-empty string of at most ``max_length`` characters PostgreSQL stores as sent.

    No control characters (`schemas.text`); ``multi_line`` admits tab, line feed and carriage
    return.
    """
    pattern = MULTI_LINE_PATTERN if multi_line else SINGLE_LINE_PATTERN
    return Field(min_length=1, max_length=max_length, pattern=pattern)


Ref = Annotated[str, text(64)]
Name = Annotated[str, text(128)]
Note = Annotated[str, text(500, multi_line=True)]
Version = Annotated[str, text(32)]
