"""Events generated from the exported JSON Schema, as any field app validating against it may
send them.

hypothesis-jsonschema would be the natural generator, but its last release (0.23.1) fails on
the hypothesis this project pins (``'many' object has no attribute 'more'`` in every object
schema), so the schema is handed to schemathesis (already a test dependency), whose JSON Schema
generator is reached through its public OpenAPI entry point: one operation whose request body
is ``field-event.schema.json``, its ``$defs`` moved under ``components/schemas``.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

from schemas.export import SCHEMA_DIR

SCHEMA_FILE = SCHEMA_DIR / "field-event.schema.json"


def _spec() -> dict[str, Any]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    defs = schema.pop("$defs")
    moved = json.loads(
        json.dumps({"defs": defs, "root": schema}).replace('"#/$defs/', '"#/components/schemas/')
    )
    body = {"required": True, "content": {"application/json": {"schema": moved["root"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "field events", "version": "1"},
        "paths": {
            "/events": {
                "post": {"requestBody": body, "responses": {"202": {"description": "accepted"}}}
            }
        },
        "components": {"schemas": moved["defs"]},
    }


def schema_events() -> st.SearchStrategy[dict[str, Any]]:
    """Any event ``field-event.schema.json`` accepts (JSON-ready dicts)."""
    operation = schemathesis.openapi.from_dict(_spec())["/events"]["POST"]
    strategy: st.SearchStrategy[dict[str, Any]] = operation.as_strategy().map(lambda c: c.body)
    return strategy
