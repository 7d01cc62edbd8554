"""Small readers of JSON-or-TOML tables, shared by the hunt definition and its options.

Each reader returns the value, or None after appending a problem to `problems` as
``"<path>: <what is wrong>, got <value>"``, so that a caller can report every problem of
a file at once. Also the text checks every field shares (`is_utf8`, `ID_PATTERN`).
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from typing import Any

ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
"""Hunt and clue ids: 1-64 ASCII letters, digits and ``_ - . :`` (use ``fullmatch``)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UTF8 = "must be valid Unicode text (no lone surrogates such as \\ud800)"
"""What a text field says of a string UTF-8 cannot hold (see `is_utf8`)."""


def is_utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8: in JSON, in SQLite, on the wire.

    Only lone surrogates (U+D800-U+DFFF) cannot: JSON's ``"\\ud800"`` escape makes
    one, and no encoder downstream (orjson, SQLite, a WebSocket) accepts it. Every
    text field (commands, queries, hunt definitions, request ids) checks this, so a
    string that passed validation can always be stored and sent.
    """
    return text.isascii() or _SURROGATE.search(text) is None


def escape_surrogates(text: str) -> str:
    """`text` with any lone surrogate written as a ``\\uXXXX`` escape: safe to put in a message."""
    return text if is_utf8(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


# Integers in a definition stay exact in every JSON client (JavaScript included).
MAX_INT = 2**53 - 1

SHOW = reprlib.Repr()
SHOW.maxstring = 100
SHOW.maxother = 100
SHOW.maxlevel = 2



def problem(problems: list[str], path: str, what: str, value: object) -> None:
    problems.append(f"{path}: {what}, got {SHOW.repr(value)}")


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def optional(table: Mapping[Any, Any], key: str) -> object:
    """An optional field's value; JSON ``null`` counts as absent."""
    return table.get(key)


def table_at(obj: object, path: str, problems: list[str]) -> Mapping[Any, Any] | None:
    if not isinstance(obj, Mapping):
        problem(problems, path, "must be an object", obj)
        return None
    return obj


def check_keys(
    table: Mapping[Any, Any],
    path: str,
    known: tuple[str, ...],
    required: tuple[str, ...],
    problems: list[str],
) -> None:
    for key in table:
        if not isinstance(key, str):
            problem(problems, path or "definition", "keys must be strings", key)
        elif key not in known:
            problems.append(f"{join_path(path, escape_surrogates(key))}: unknown key")
    for key in required:
        if key not in table:
            problems.append(f"{join_path(path, key)}: required")


def list_at(obj: object, path: str, problems: list[str]) -> list[object] | None:
    if not isinstance(obj, (list, tuple)):
        problem(problems, path, "must be a list", obj)
        return None
    return list(obj)


def text_at(obj: object, path: str, problems: list[str]) -> str | None:
    if not isinstance(obj, str):
        problem(problems, path, "must be a string", obj)
        return None
    if not obj.strip():
        problem(problems, path, "must not be blank", obj)
        return None
    if not is_utf8(obj):
        problem(problems, path, NOT_UTF8, obj)
        return None
    return obj


def id_at(obj: object, path: str, problems: list[str]) -> str | None:
    if not isinstance(obj, str):
        problem(problems, path, "must be a string", obj)
        return None
    if ID_PATTERN.fullmatch(obj) is None:
        problem(problems, path, "must be 1-64 letters, digits, '_', '-', '.' or ':'", obj)
        return None
    return obj


def int_at(obj: object, path: str, problems: list[str], *, positive: bool) -> int | None:
    if not isinstance(obj, int) or isinstance(obj, bool):
        problem(problems, path, "must be an integer", obj)
        return None
    if positive and obj <= 0:
        problem(problems, path, "must be > 0", obj)
        return None
    if obj < 0:
        problem(problems, path, "must be >= 0", obj)
        return None
    if obj > MAX_INT:
        problem(problems, path, f"must be <= {MAX_INT}", obj)
        return None
    return obj


def number_at(
    obj: object,
    path: str,
    problems: list[str],
    *,
    low: float,
    high: float = MAX_INT,
    open_low: bool = False,
) -> float | None:
    if not isinstance(obj, (int, float)) or isinstance(obj, bool):
        problem(problems, path, "must be a number", obj)
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        problem(problems, path, "must be a finite number", obj)
        return None
    if obj < low or (open_low and obj == low):
        problem(problems, path, f"must be {'>' if open_low else '>='} {low}", obj)
        return None
    if obj > high:
        problem(problems, path, f"must be <= {high}", obj)
        return None
    return float(obj)


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
