"""Which characters the contract's text fields take: only what PostgreSQL stores as sent.

PostgreSQL cannot store NUL (U+0000) in ``text`` or ``jsonb`` at all, and a lone UTF-16
surrogate (which JSON can carry as an escape such as ``\\ud800``) is not a character. The other
control characters (C0, DEL, C1) would be stored, but no field of an event needs one, and they
corrupt every screen, CSV and log line that shows them, so they are refused too. Free text
(`Note`: premises, descriptions, reasons) may span lines: tab, line feed and carriage return are
allowed there and nowhere else. Everything else (any script, emoji outside the BMP, zero-width
and bidi formatting characters) is stored and hashed exactly as received.

The rules are JSON Schema patterns (ECMA 262 and pydantic's regex engine read them alike), so a
field app's validator says the same. JSON Schema cannot speak of lone surrogates: the server
finds them (`lone_surrogate_errors`) because its JSON parsers refuse them without saying where.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

#: No control character at all: identifiers, names, units, areas, references.
SINGLE_LINE_PATTERN: Final = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
#: Free text: tab (U+0009), line feed (U+000A) and carriage return (U+000D) allowed.
MULTI_LINE_PATTERN: Final = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"

_MESSAGES: Final = {
    SINGLE_LINE_PATTERN: "must not contain control characters (U+0000-U+001F, U+007F-U+009F)",
    MULTI_LINE_PATTERN: "must not contain control characters other than tab, line feed and"
    " carriage return (U+0000-U+001F, U+007F-U+009F)",
}


_CONTROL: Final = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")


def is_single_line_text(value: str) -> bool:
    """Whether ``value`` passes `SINGLE_LINE_PATTERN` and holds no lone surrogate.

    For text that reaches the ledger without passing the contract's models (a token's subject).
    """
    return _CONTROL.search(value) is None


def pattern_message(pattern: str, value: object) -> str | None:
    """The client-facing message when ``value`` fails one of the patterns above, else None."""
    base = _MESSAGES.get(pattern)
    if base is None:
        return None
    allowed = "\t\n\r" if pattern == MULTI_LINE_PATTERN else ""
    if isinstance(value, str):
        for position, char in enumerate(value):
            if _is_control(char) and char not in allowed:
                return f"{base}; found U+{ord(char):04X} at character {position}"
    return base


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    # A str decoded from valid UTF-8 never holds one; only a JSON escape can produce it.
    return _SURROGATE.search(text) is not None


def _shown(text: str) -> str:
    """``text`` with lone surrogates written as escapes, safe to put in a UTF-8 answer."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class LoneSurrogate(NamedTuple):
    """Where a lone surrogate sits: the field's path, and whether it is in a field name."""

    path: str
    in_name: bool

    def error(self) -> dict[str, str]:
        """The ``{path, message}`` of a contract error."""
        if self.in_name:
            return {"path": self.path, "message": "field name contains a lone UTF-16 surrogate"}
        return {
            "path": self.path,
            "message": "contains a lone UTF-16 surrogate escape, which is not a character",
        }


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[LoneSurrogate]:
    if isinstance(value, str):
        if _has_surrogate(value):
            yield LoneSurrogate(".".join(path), in_name=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = (*path, _shown(str(key)))
            if isinstance(key, str) and _has_surrogate(key):
                yield LoneSurrogate(".".join(where), in_name=True)
            yield from _walk(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, str(index)))


def lone_surrogates(value: Any) -> list[LoneSurrogate]:
    """Every string (or field name) in ``value`` holding a lone surrogate."""
    return list(_walk(value, ()))


def lone_surrogate_errors(value: Any) -> list[dict[str, str]]:
    """``{path, message}`` for every string (or field name) in ``value`` with a lone surrogate."""
    return [found.error() for found in _walk(value, ())]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# A \uD800-\uDFFF escape: without one, no string of the document can hold a surrogate.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def load_lenient(raw: bytes | bytearray | str) -> Any:
    """Parse JSON that a strict parser refused, keeping lone surrogate escapes; None if not JSON.

    Only for locating what made a strict parser fail: a document with no surrogate escape is not
    parsed again (None), NaN and Infinity stay refused, and any other failure (bad UTF-8, too
    deep, truncated) gives None.
    """
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        if not _SURROGATE_ESCAPE.search(text):
            return None
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
