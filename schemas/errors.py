"""Validation failures in the client's terms: a list of ``{path, message}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from schemas.envelope import SERVER_FIELDS
from schemas.text import pattern_message

ErrorEntry = dict[str, str]


class ContractError(ValueError):
    """An event breaks the contract; ``errors`` lists each problem as ``{path, message}``."""

    def __init__(self, errors: list[ErrorEntry]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['path'] or '(event)'}: {e['message']}" for e in errors))


_PREFIXES = (
    ("Input should be", "must be"),
    ("Input should have", "must have"),
    ("String should", "must"),
    ("Tuple should", "must"),
    ("List should", "must"),
)


def _message(err: Mapping[str, Any], path: str) -> str:
    kind = err["type"]
    if kind == "missing" or kind == "union_tag_not_found":
        return "field required"
    if kind == "extra_forbidden":
        if path in SERVER_FIELDS:
            return "set by the server; a client must not send it"
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"must be one of: {err['ctx']['expected_tags']}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    if kind == "string_pattern_mismatch":
        text_rule = pattern_message(str(err["ctx"]["pattern"]), err.get("input"))
        if text_rule is not None:
            return text_rule
    msg: str = err["msg"]
    for old, new in _PREFIXES:
        if msg.startswith(old):
            return new + msg[len(old) :]
    return msg


def from_validation_error(
    exc: ValidationError, nested_tags: Mapping[tuple[str, str], frozenset[str]]
) -> ContractError:
    """Translate pydantic's errors, dropping the union tags it adds to each location."""
    entries: list[ErrorEntry] = []
    for err in exc.errors(include_url=False, include_input=True):
        loc = list(err["loc"])
        if loc:
            kind = str(loc.pop(0))  # the top-level union's tag: the event's `type`
            if len(loc) >= 2 and loc[1] in nested_tags.get((kind, str(loc[0])), ()):
                del loc[1]
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc.append(str(err["ctx"]["discriminator"]).strip("'"))
        path = ".".join(str(part) for part in loc)
        if err["type"] == "json_invalid":
            entries.append({"path": "", "message": f"invalid JSON: {err['ctx']['error']}"})
            continue
        entries.append({"path": path, "message": _message(err, path)})
    return ContractError(entries)
