"""Query parameters: the one place values enter SQL text, for both backends.

Queries are written once with ClickHouse's own placeholders, ``{name:Type}``. Every value is
checked against its placeholder's type first (``check``), then bound the backend's safe way:

- chDB takes the placeholders natively and parses each value server-side as the declared type
  (``encode``), so a value can never become SQL; the text it wants is the "escaped" text format
  of that type, which is what ``encode`` writes.
- ClickHouse 18.16 predates server-side parameters, so for clickhouse-driver the placeholders
  become ``%(name)s`` (``to_pyformat``) and the driver quotes and escapes each value itself.

Supported types are the ones the schema uses: (U)Int8..64, String and Arrays of those.
"""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):\s*([A-Za-z0-9_() ]+?)\s*\}")
_INT = re.compile(r"U?Int(8|16|32|64)$")
_ARRAY = re.compile(r"Array\((.+)\)$")

# Escapes of ClickHouse's escaped (TSV) text format; quoted strings additionally escape "'".
_ESCAPES = {
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\0": "\\0",
    "\b": "\\b",
    "\f": "\\f",
}
_QUOTED_ESCAPES = {**_ESCAPES, "'": "\\'"}


class ParameterError(ValueError):
    pass


def placeholders(sql: str) -> dict[str, str]:
    """{name: ClickHouse type} of the placeholders in a query."""
    found: dict[str, str] = {}
    for name, ch_type in PLACEHOLDER.findall(sql):
        if found.setdefault(name, ch_type) != ch_type:
            raise ParameterError(f"parameter {name!r} has two types: {found[name]}, {ch_type}")
    return found


def _check_value(name: str, value, ch_type: str) -> None:
    inner = _ARRAY.match(ch_type)
    if inner:
        if not isinstance(value, list | tuple):
            raise ParameterError(f"parameter {name!r} ({ch_type}) needs a list, got {value!r}")
        for item in value:
            _check_value(name, item, inner.group(1))
    elif _INT.match(ch_type):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} ({ch_type}) needs an int, got {value!r}")
        bits = int(_INT.match(ch_type).group(1))
        signed = not ch_type.startswith("U")
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        if not lo <= value <= hi:
            raise ParameterError(f"parameter {name!r} ({ch_type}) out of range: {value}")
    elif ch_type == "String":
        if not isinstance(value, str):
            raise ParameterError(f"parameter {name!r} (String) needs a str, got {value!r}")
    else:
        raise ParameterError(f"parameter {name!r}: type {ch_type} is not supported")


def check(sql: str, params: dict | None) -> dict[str, str]:
    """Checks that params match the query's placeholders one to one, by type; returns them."""
    wanted = placeholders(sql)
    given = params or {}
    if set(wanted) != set(given):
        missing, extra = set(wanted) - set(given), set(given) - set(wanted)
        raise ParameterError(f"parameters missing: {sorted(missing)}, unexpected: {sorted(extra)}")
    for name, ch_type in wanted.items():
        _check_value(name, given[name], ch_type)
    return wanted


def _escape(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in text)


def encode(value, ch_type: str) -> str:
    """A checked value as the text ClickHouse parses for a ``{name:ch_type}`` parameter.

    Scalars use the escaped format (a String is not quoted); an Array is written as a literal
    whose elements are quoted strings or plain integers.
    """
    inner = _ARRAY.match(ch_type)
    if inner:
        return "[" + ",".join(_element(item, inner.group(1)) for item in value) + "]"
    if ch_type == "String":
        return _escape(value, _ESCAPES)
    return str(int(value))


def _element(value, ch_type: str) -> str:
    if ch_type == "String":
        return "'" + _escape(value, _QUOTED_ESCAPES) + "'"
    return encode(value, ch_type)


def to_pyformat(sql: str) -> str:
    """``{name:Type}`` -> ``%(name)s`` for clickhouse-driver (literal ``%`` doubled first)."""
    return PLACEHOLDER.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))
