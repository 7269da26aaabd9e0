"""Turn raw input into a validated event, and a validated event back into JSON-ready data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.errors import ContractError, from_validation_error
from schemas.events import FIELD_EVENT_ADAPTER, NESTED_TAGS, FieldEvent
from schemas.text import load_lenient, lone_surrogate_errors
from schemas.upcasters import DEFAULT_REGISTRY, UpcasterRegistry

DEFAULT_MAX_FUTURE = timedelta(minutes=5)


class _Timed(Protocol):
    @property
    def occurred_at(self) -> datetime: ...


E = TypeVar("E", bound=_Timed)


class EventParser(Generic[E]):
    """Validation against one union of kinds with one upcaster registry."""

    def __init__(
        self,
        adapter: TypeAdapter[E],
        upcasters: UpcasterRegistry,
        nested_tags: Mapping[tuple[str, str], frozenset[str]] = NESTED_TAGS,
    ) -> None:
        self._adapter = adapter
        self._upcasters = upcasters
        self._nested_tags = nested_tags

    def parse(
        self,
        data: bytes | str | Mapping[str, Any],
        *,
        now: datetime | None = None,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
    ) -> E:
        raw = data if isinstance(data, bytes | bytearray | str) else _to_json(data)
        try:
            event = self._adapter.validate_json(raw)
        except ValidationError as exc:
            # Old versions fail the current models (schema_version is a literal), so the fast
            # path never pays for upcasting.
            event = self._upcast_or_raise(raw, exc)
        if now is not None:
            if now.tzinfo is None:
                raise ValueError("now must be timezone-aware")
            ahead = event.occurred_at - now
            if ahead > max_future:
                raise ContractError(
                    [
                        {
                            "path": "occurred_at",
                            "message": f"is {ahead} after the server clock;"
                            f" at most {max_future} is allowed",
                        }
                    ]
                )
        return event

    def _upcast_or_raise(self, raw: bytes | str, exc: ValidationError) -> E:
        if len(self._upcasters):
            try:
                loaded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                loaded = None
            if isinstance(loaded, dict) and self._upcasters.applies(loaded):
                upgraded = orjson.dumps(self._upcasters.upcast(loaded))
                try:
                    return self._adapter.validate_json(upgraded)
                except ValidationError as again:
                    raise from_validation_error(again, self._nested_tags) from None
        raise self._refusal(raw, exc) from None

    def _refusal(self, raw: bytes | str, exc: ValidationError) -> ContractError:
        errors = exc.errors(include_url=False, include_input=False)
        if len(errors) == 1 and errors[0]["type"] == "json_invalid":
            # The strict parser refuses a lone surrogate escape without saying where it is.
            found = lone_surrogate_errors(load_lenient(raw))
            if found:
                return ContractError(found)
        return from_validation_error(exc, self._nested_tags)


def _to_json(data: Mapping[str, Any]) -> bytes:
    # One validation path (JSON, strict) for every input, so a dict is judged exactly as the
    # same bytes would be, and exactly as the exported JSON Schema judges them.
    try:
        return orjson.dumps(data if isinstance(data, dict) else dict(data))
    except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
        found = lone_surrogate_errors(data)
        if found:
            raise ContractError(found) from None
        message = f"not representable as JSON: {exc}"
        raise ContractError([{"path": "", "message": message}]) from None


_PARSER: EventParser[FieldEvent] = EventParser(FIELD_EVENT_ADAPTER, DEFAULT_REGISTRY)


def parse_event(
    data: bytes | str | Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
) -> FieldEvent:
    """Upcast, validate and return one client event; raise `ContractError` if it is refused.

    With ``now``, an ``occurred_at`` more than ``max_future`` after ``now`` is refused.
    """
    return _PARSER.parse(data, now=now, max_future=max_future)


def event_to_dict(event: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of an event; absent optional fields are left out, never ``null``."""
    out: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    return out
