"""`opsledger verify --export`: offline, exit 0 for an intact bundle and 1 for an edited one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from services.cli.main import app

from .conftest import Rows
from .test_export import _bundle


def test_verify_export_exit_codes(tmp_path: Path, chain: Rows) -> None:
    path = _bundle(tmp_path, chain)
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", "--export", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "bundle intact" in ok.output
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"URN-110456") + 4] = ord("9")
    path.write_bytes(bytes(raw))
    bad = runner.invoke(app, ["verify", "--export", str(path), "--json"])
    assert bad.exit_code == 1
    assert '"first_broken_seq": 10' in bad.output
