"""A CSV that a spreadsheet cannot be turned against (OWASP "CSV injection").

A spreadsheet evaluates a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula, and
tab or carriage return can smuggle one past a naive check. Event text comes from the field
(an officer's notes, a premises name), so every such cell is prefixed with a single quote,
which spreadsheets show as text. A cell that already begins with a quote gets one more, so
the rule can be undone exactly: :func:`restore` gives back every original value, and a bundle
check compares the restored sheet with the machine-readable events file, which is never
neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

#: Leading characters a spreadsheet may treat as the start of a formula (OWASP list).
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralise(cell: str) -> str:
    """The cell as a spreadsheet will show it, never as a formula."""
    if cell.startswith((*FORMULA_STARTS, QUOTE)):
        return QUOTE + cell
    return cell


def restore(cell: str) -> str:
    """The exact value :func:`neutralise` was given."""
    if cell.startswith(QUOTE) and cell[1:].startswith((*FORMULA_STARTS, QUOTE)):
        return cell[1:]
    return cell


def write(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """A CSV (header first) with every cell neutralised; every field quoted."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([neutralise(c) for c in header])
    for row in rows:
        writer.writerow([neutralise(c) for c in row])
    return buf.getvalue().encode()


def read(data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a sheet :func:`write` made, every cell restored."""
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    lines = [[restore(c) for c in row] for row in reader]
    return (lines[0] if lines else []), lines[1:]
