"""Just enough PromQL reading for lint: the vector selectors and range durations of an expression.

Whether an expression is valid PromQL is for the real Prometheus to say (the tests load every
expression into one); this only finds metric names, their matchers and what encloses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Grouping clauses hold label names, not metrics: blank them out before looking for selectors.
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string
    r"|\{[^}]*\}"  # matchers without a metric name in front
    r"|\[[^\]]*\]"  # a range
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?P<matchers>\{[^}]*\})?"
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    before: str  # the expression text before the selector, stripped


def selectors(expr: str) -> list[Selector]:
    text = _GROUPING.sub(lambda m: " " * len(m.group(0)), expr)
    found = []
    for m in _TOKEN.finditer(text):
        name = m.group("name")
        if not name or name.lower() in _KEYWORDS:
            continue
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") and not m.group("matchers"):
            continue  # a function or an aggregation
        matchers = tuple(_MATCHER.findall(m.group("matchers") or ""))
        found.append(Selector(name, matchers, text[: m.start()].rstrip()))
    return found


def ranges(expr: str) -> list[tuple[str, str]]:
    """(function applied, range) of every range selector, e.g. ("rate", "$__rate_interval")."""
    out = []
    for m in re.finditer(r"\[([^\]]+)\]", expr):
        head = expr[: m.start()]
        fn = re.findall(r"([a-z_]+)\s*\([^()]*$", head)
        out.append((fn[-1] if fn else "", m.group(1)))
    return out
