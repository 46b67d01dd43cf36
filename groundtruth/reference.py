"""The README's reference tables, generated from the schema so they cannot drift.

``python -m groundtruth.reference`` rewrites the block between the markers in README.md;
tests/test_readme.py fails when the committed README differs from what this generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

from schema.events import columns

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- event-tables:begin -->", "<!-- event-tables:end -->"


def event_tables_markdown() -> str:
    from store.schema import TABLES

    out = []
    for table, cls in TABLES.items():
        out += [f"#### `{table}`", "", (cls.__doc__ or "").strip(), ""]
        out += ["| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{name}` | `{ch_type}` | {doc} |" for name, ch_type, doc in columns(cls)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def with_tables(readme: str) -> str:
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README.md lacks the {BEGIN} ... {END} markers")
    return f"{head}{BEGIN}\n{event_tables_markdown()}{END}{tail}"


def main() -> int:
    README.write_text(with_tables(README.read_text()))
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
