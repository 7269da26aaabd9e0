"""The one schema-name check before a name is spliced into SQL."""

from __future__ import annotations

import pytest

from services.ledger.schema import ident


@pytest.mark.parametrize("name", ["ledger", "ledger_shadow_1", "_x"])
def test_plain_schema_names_are_accepted(name: str) -> None:
    assert ident(name) == name


@pytest.mark.parametrize("name", ["", "Ledger", 'x"; drop', "a.b", "1abc", "x" * 64, "ledger\n"])
def test_other_schema_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        ident(name)
