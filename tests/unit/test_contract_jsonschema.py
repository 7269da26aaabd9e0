"""The exported JSON Schema is current, and gives field apps the same verdict as the server."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import regress  # type: ignore[import-untyped,unused-ignore]
from jsonschema import Draft202012Validator, ValidationError, validators  # type: ignore[import-untyped]
from jsonschema.protocols import Validator  # type: ignore[import-untyped]

from schemas import KINDS, ContractError, example_events, parse_event
from schemas.export import SCHEMA_DIR, build_schemas, stale_schemas

DELETE = object()


def _ecma_pattern(
    validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # Python's `re` lets `$` match before a trailing newline; JSON Schema patterns are ECMA 262,
    # as in any field app's validator, so judge them with an ECMA engine.
    if validator.is_type(instance, "string") and regress.Regex(pattern).find(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return loaded


FIELD_EVENT = EcmaValidator(load("field-event.schema.json"))


def mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return event


WARRANT, ARREST, WRAP, PHONE, CASH = (
    example_events("warrant_executed")[0],
    example_events("arrest_made")[0],
    example_events("item_seized")[0],
    example_events("item_seized")[1],
    example_events("item_seized")[3],
)
VOID = example_events("event_voided")[0]

VALID = [
    *example_events(),
    mutate(WARRANT, "occurred_at", "2026-11-17t06:15:00z"),
    mutate(WARRANT, "occurred_at", "2026-11-17T06:15:00.123456+05:30"),
    mutate(WARRANT, "occurred_at", "2026-11-17T06:15:00-00:00"),
    mutate(WARRANT, "event_id", "5B0E8D1C-3F7A-4C2E-9A61-0D4C6F1E2B3A"),
    mutate(WARRANT, "location", {"area": "Berkshire", "lat": 51, "lon": 0}),
    mutate(WARRANT, "payload.premises", None),
    mutate(WARRANT, "source.app_version", None),
    mutate(WARRANT, "operation_id", "abc"),
    mutate(WARRANT, "operation_id", "a" * 64),
    mutate(ARREST, "payload.offences", ["x"] * 20),
    mutate(PHONE, "payload.quantity", 1_000_000),
    mutate(CASH, "payload.amount_pence", 1),
    mutate(WARRANT, "actor.unit", "é" * 128),
    mutate(WARRANT, "actor.unit", "\U0001f46e" * 128),  # outside the BMP: 128 characters
    mutate(WARRANT, "actor.unit", "Strong\u200bhold \u202eTVP\u202c"),  # zero-width, bidi
    mutate(WARRANT, "payload.premises", "flat 2,\r\nHigh St\tBletchley\n"),  # free text
    mutate(VOID, "payload.reason", "entered twice\n(see PC4101)"),
]

INVALID = [
    mutate(WARRANT, "recorded_at", "2026-11-17T06:16:00Z"),
    mutate(WARRANT, "principal", "pc-4101"),
    mutate(WARRANT, "colour", "blue"),
    mutate(WARRANT, "actor.rank", "PC"),
    mutate(WARRANT, "payload.extra", 1),
    mutate(WARRANT, "occurred_at", "2026-11-17T06:15:00"),
    mutate(WARRANT, "occurred_at", "2026-11-17"),
    mutate(WARRANT, "occurred_at", "2026-11-17 06:15:00Z"),
    mutate(WARRANT, "occurred_at", "2026-13-17T06:15:00Z"),
    mutate(WARRANT, "occurred_at", "2026-11-17T06:15:00.1234567Z"),
    mutate(WARRANT, "occurred_at", "2026-11-17T06:15:00Z\n"),
    mutate(WARRANT, "occurred_at", "２０２６-11-17T06:15:00Z"),
    mutate(WARRANT, "occurred_at", 1_700_000_000),
    mutate(WARRANT, "occurred_at", DELETE),
    mutate(WARRANT, "event_id", "not-a-uuid"),
    mutate(WARRANT, "event_id", "5b0e8d1c3f7a4c2e9a610d4c6f1e2b3a"),
    mutate(WARRANT, "event_id", "{5b0e8d1c-3f7a-4c2e-9a61-0d4c6f1e2b3a}"),
    mutate(WARRANT, "event_id", 42),
    mutate(WARRANT, "operation_id", "Week-Of-Action"),
    mutate(WARRANT, "operation_id", "ab"),
    mutate(WARRANT, "operation_id", "-abc"),
    mutate(WARRANT, "operation_id", "a" * 65),
    mutate(WARRANT, "operation_id", "abc\n"),
    mutate(WARRANT, "type", "car_stopped"),
    mutate(WARRANT, "type", DELETE),
    mutate(WARRANT, "type", "arrest_made"),
    mutate(WARRANT, "schema_version", 2),
    mutate(WARRANT, "schema_version", "1"),
    mutate(WARRANT, "schema_version", True),
    mutate(WARRANT, "actor.unit", ""),
    mutate(WARRANT, "actor.unit", "x" * 129),
    mutate(WARRANT, "actor", "PC 4101"),
    mutate(WARRANT, "location.lat", 90.5),
    mutate(WARRANT, "location.lon", -180.5),
    mutate(WARRANT, "location.lat", "51.8"),
    mutate(WARRANT, "location.lon", True),
    mutate(WARRANT, "location.area", DELETE),
    mutate(WARRANT, "source.device_id", DELETE),
    mutate(WARRANT, "payload.premises", "x" * 501),
    mutate(WARRANT, "payload.warrant_ref", 142),
    mutate(WARRANT, "actor.officer_id", "PC\x004101"),  # NUL: PostgreSQL cannot store it
    mutate(WARRANT, "actor.unit", "Stronghold\x00"),
    mutate(WARRANT, "actor.unit", "Stronghold\x1b[31m"),  # C0 (ESC)
    mutate(WARRANT, "location.area", "Berkshire\x7f"),  # DEL
    mutate(WARRANT, "source.device_id", "tablet\x85"),  # C1 (NEL)
    mutate(WARRANT, "source.app_version", "3.2\n"),
    mutate(WARRANT, "payload.warrant_ref", "W-1\t2"),  # tab only in free text
    mutate(WARRANT, "payload.premises", "flat\x0b2"),  # vertical tab, even in free text
    mutate(ARREST, "payload.offences", ["ok", "PWITS\x9f"]),
    mutate(ARREST, "payload.age_band", "child"),
    mutate(ARREST, "payload.offences", []),
    mutate(ARREST, "payload.offences", ["x"] * 21),
    mutate(ARREST, "payload.offences", "PWITS"),
    mutate(ARREST, "payload.offences", ["ok", ""]),
    mutate(WRAP, "payload.substance", DELETE),
    mutate(WRAP, "payload.substance", "ketamine"),
    mutate(WRAP, "payload.quantity", 12.5),
    mutate(WRAP, "payload.quantity", "12"),
    mutate(WRAP, "payload.quantity", 0),
    mutate(WRAP, "payload.quantity", -3),
    mutate(WRAP, "payload.quantity", 1_000_001),
    mutate(WRAP, "payload.quantity", 10**30),
    mutate(WRAP, "payload.quantity", True),
    mutate(PHONE, "payload.substance", "crack"),
    mutate(PHONE, "payload.amount_pence", 100),
    mutate(PHONE, "payload.item", "car"),
    mutate(PHONE, "payload.item", DELETE),
    mutate(CASH, "payload.quantity", 3),
    mutate(CASH, "payload.amount_pence", 12.5),
    mutate(CASH, "payload.amount_pence", -5),
    mutate(CASH, "payload.amount_pence", 0),
    mutate(CASH, "payload.amount_pence", "1250"),
    mutate(CASH, "payload.currency", "EUR"),
    mutate(CASH, "payload.currency", DELETE),
    mutate(VOID, "payload.voided_event_id", "nope"),
    mutate(VOID, "payload.reason", ""),
    mutate(example_events("school_visited")[0], "payload.pupils_engaged", -1),
    mutate(example_events("vulnerable_person_engaged")[0], "payload.safeguarding_referral", 1),
    mutate(example_events("vulnerable_person_engaged")[0], "payload.safeguarding_referral", "yes"),
]

# Refused by the server, accepted by the schema: JSON Schema cannot say these. docs/events.md
# lists them; this test fails if either side changes its mind.
SERVER_ONLY = [
    mutate(WARRANT, "occurred_at", "2026-02-30T06:15:00Z"),  # not a calendar date
    mutate(CASH, "payload.amount_pence", 1250.0),  # JSON Schema: 1250.0 is an integer
    mutate(WRAP, "payload.quantity", 3.0),
    mutate(WARRANT, "schema_version", 1.0),
]


def server_accepts(event: dict[str, Any]) -> bool:
    try:
        parse_event(json.dumps(event))
    except ContractError:
        return False
    return True


def test_committed_files_match_the_models() -> None:
    assert stale_schemas() == [], "run `opsledger schemas export` and commit schemas/json/v1"
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(build_schemas())


@pytest.mark.parametrize("name", sorted(build_schemas()))
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    schema = load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert "$ref" not in json.dumps(schema).replace('"$ref": "#/$defs/', "")  # self-contained


@pytest.mark.parametrize("event", VALID, ids=lambda e: e["type"] if "type" in e else "?")
def test_valid_corpus_accepted_by_both(event: dict[str, Any]) -> None:
    assert server_accepts(event)
    assert FIELD_EVENT.is_valid(event)


@pytest.mark.parametrize("index", range(len(INVALID)))
def test_invalid_corpus_refused_by_both(index: int) -> None:
    event = INVALID[index]
    assert not server_accepts(event)
    assert not FIELD_EVENT.is_valid(event), json.dumps(event)[:300]


@pytest.mark.parametrize("index", range(len(SERVER_ONLY)))
def test_server_only_rules_are_exactly_the_documented_ones(index: int) -> None:
    event = SERVER_ONLY[index]
    assert not server_accepts(event)
    assert FIELD_EVENT.is_valid(event)


@pytest.mark.parametrize("kind", KINDS)
def test_per_kind_file_accepts_its_kind_only(kind: str) -> None:
    validator = EcmaValidator(load(f"{kind}.schema.json"))
    for event in example_events():
        assert validator.is_valid(event) == (event["type"] == kind)


def test_cli_export_writes_and_check_detects_drift(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from services.cli.main import app

    runner = CliRunner()
    assert (
        runner.invoke(app, ["schemas", "export", "--out", str(tmp_path), "--check"]).exit_code == 1
    )
    result = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(build_schemas())
    assert (
        runner.invoke(app, ["schemas", "export", "--out", str(tmp_path), "--check"]).exit_code == 0
    )
    (tmp_path / "item_seized.schema.json").write_text("{}", encoding="utf-8")
    drift = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path), "--check"])
    assert drift.exit_code == 1 and "item_seized.schema.json" in drift.output


def test_lone_surrogate_is_judged_by_the_server_only() -> None:
    # An ECMA engine cannot even be handed such a string from Python; `re` can, and the
    # schema (which cannot express the rule) accepts it.
    event = mutate(WARRANT, "payload.warrant_ref", "W-\udc00")
    assert not server_accepts(event)
    assert Draft202012Validator(load("field-event.schema.json")).is_valid(event)
