"""The standalone verifier: stdlib + cryptography only, and its command line on real documents."""

from __future__ import annotations

import ast
import base64
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from schemas.canonical import canonical_json
from services.tlog import merkle, verifier
from services.tlog.keys import Signer
from services.tlog.verifier import Checkpoint

SOURCE = Path(verifier.__file__)
LEDGER = Signer.generate("ledger.test")


def test_imports_only_the_standard_library_and_cryptography() -> None:
    roots = set()
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


def _ledger(n: int):  # type: ignore[no-untyped-def]
    bodies = [{"event_id": f"e{i}", "operation_id": "op-s", "type": "arrest_made", "n": i}
              for i in range(n)]  # fmt: skip
    leaves = [canonical_json(b) for b in bodies]
    nodes = {(lvl, idx): h for lvl, idx, h in merkle.append(0, [], leaves).nodes}
    note = LEDGER.sign_note(
        Checkpoint("ledger.test/op-s", n, merkle.root(nodes.__getitem__, n)).text()
    )
    return bodies, leaves, nodes, note


def run(path: Path, key: Path) -> subprocess.CompletedProcess[str]:
    # Run the file itself, as a third party would: not the package module.
    return subprocess.run(
        [sys.executable, str(SOURCE), str(path), "--public-key", str(key)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_checks_a_proofs_file_and_catches_a_changed_event(tmp_path: Path) -> None:
    bodies, leaves, nodes, note = _ledger(9)
    doc = {
        "operation_id": "op-s", "metric": "arrests", "figure": 2, "checkpoint": note,
        "events": [
            {"event_id": f"e{i}", "index": i, "leaf": leaves[i].decode(), "delta": 1,
             "proof": [base64.b64encode(h).decode()
                       for h in merkle.inclusion_proof(nodes.__getitem__, i, 9)]}
            for i in (2, 7)
        ],
    }  # fmt: skip
    key = tmp_path / "ledger.vkey"
    key.write_text(str(LEDGER.public) + "\n")
    good = tmp_path / "proofs.json"
    good.write_text(json.dumps(doc))
    result = run(good, key)
    assert result.returncode == 0, result.stderr
    assert "arrests = 2" in result.stdout
    doc["events"][1]["leaf"] = doc["events"][1]["leaf"].replace('"n":7', '"n":70')
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = run(bad, key)
    assert result.returncode == 1
    assert "does not lead to the root" in result.stderr


def test_cli_checks_a_bundle_whose_events_are_the_leaves(tmp_path: Path) -> None:
    bodies, leaves, _, note = _ledger(5)
    events = b"".join(json.dumps({"seq": i + 1, "body": b}).encode() + b"\n"
                      for i, b in enumerate(bodies))  # fmt: skip

    def bundle(name: str, events_bytes: bytes) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w") as tar:
            for member, data in (
                ("checkpoint", note.encode()),
                ("events.jsonl", events_bytes),
                ("leaves.jsonl", b"".join(x + b"\n" for x in leaves)),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    key = tmp_path / "ledger.vkey"
    key.write_text(str(LEDGER.public))
    assert run(bundle("good.tar", events), key).returncode == 0
    swapped = events.replace(b'"n": 3', b'"n": 33')
    result = run(bundle("bad.tar", swapped), key)
    assert result.returncode == 1 and "seq 4 is not leaf 3" in result.stderr
