"""Every example in docs/import.md imports cleanly, as a user who copies it would find."""

from __future__ import annotations

import re
from pathlib import Path

from services.importer.rows import read_import_file

DOC = Path(__file__).resolve().parents[3] / "docs" / "import.md"


def test_every_example_file_in_the_doc_is_valid(tmp_path: Path) -> None:
    text = DOC.read_text()
    examples = re.findall(r"`(\w+\.csv)`[^\n]*\n```csv\n(.*?)```", text, re.S)
    assert len(examples) == 6  # one per kind
    kinds = set()
    for name, body in examples:
        path = tmp_path / name
        path.write_text(body)
        imported = read_import_file(path)
        assert imported.rows and all(r.ok for r in imported.rows), (name, imported.rows)
        kinds.add(imported.kind)
    assert len(kinds) == 6
    jsonl = tmp_path / "week.jsonl"
    jsonl.write_text(re.findall(r"```json\n(.*?)```", text, re.S)[0])
    assert all(r.ok for r in read_import_file(jsonl).rows)
