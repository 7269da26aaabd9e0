"""JSON Schema (draft 2020-12) for field apps, generated from the models.

``field-event.schema.json`` validates any event on its own (no other file needed); one file per
kind validates that kind alone. Rules only the server can judge are listed in ``docs/events.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from schemas.envelope import CURRENT_SCHEMA_VERSION
from schemas.events import FIELD_EVENT_ADAPTER, KINDS

SCHEMA_DIR: Final = Path(__file__).parent / "json" / f"v{CURRENT_SCHEMA_VERSION}"
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_SERVER_ONLY: Final = (
    " Also checked by the server only: occurred_at at most 5 minutes after the server clock,"
    " and that occurred_at names a real calendar date (e.g. not 30 February)."
    " Integers must be sent without a fraction (3, not 3.0)."
    " No string may hold a lone UTF-16 surrogate escape (e.g. \\ud800)."
)


def _finish(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DIALECT, "title": title, "description": description, **schema}


def build_schemas() -> dict[str, dict[str, Any]]:
    """File name to schema, for every file under ``SCHEMA_DIR``."""
    out = {
        "field-event.schema.json": _finish(
            FIELD_EVENT_ADAPTER.json_schema(),
            "FieldEvent",
            "Any opsledger field event as a client submits it (schema_version"
            f" {CURRENT_SCHEMA_VERSION}), discriminated on `type`." + _SERVER_ONLY,
        )
    }
    for kind, model in KINDS.items():
        schema = model.model_json_schema()
        description = schema.pop("description", model.__name__)
        out[f"{kind}.schema.json"] = _finish(
            schema, schema.pop("title", model.__name__), description + _SERVER_ONLY
        )
    return out


def render(schema: dict[str, Any]) -> str:
    """The committed text of one schema file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in build_schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, schema in build_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(name)
    return stale
