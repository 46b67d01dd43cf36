"""The README's reference tables, generated from the code so they cannot drift: the event
tables from the schema, the exporter's settings from its config.

``python -m groundtruth.reference`` rewrites the blocks between the markers in README.md;
tests/test_readme.py fails when the committed README differs from what this generates.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from schema.events import columns

README = Path(__file__).resolve().parent.parent / "README.md"
EMPTY = "''"  # an empty text setting, as YAML writes it
BLOCKS = ("event-tables", "settings")  # <!-- NAME:begin --> ... <!-- NAME:end -->


def event_tables_markdown() -> str:
    from store.schema import TABLES

    out = []
    for table, cls in TABLES.items():
        out += [f"#### `{table}`", "", (cls.__doc__ or "").strip(), ""]
        out += ["| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{name}` | `{ch_type}` | {doc} |" for name, ch_type, doc in columns(cls)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def settings_markdown() -> str:
    from exporter.config import ExporterConfig

    defaults = ExporterConfig(host="(the hostname)")
    out = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(ExporterConfig):
        default = getattr(defaults, f.name)
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        shown = f"`{shown or EMPTY}`"
        out.append(f"| `{f.name}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(out) + "\n"


def with_tables(readme: str) -> str:
    for name, markdown in zip(BLOCKS, (event_tables_markdown, settings_markdown), strict=True):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, sep, rest = readme.partition(begin)
        _, sep2, tail = rest.partition(end)
        if not sep or not sep2:
            raise ValueError(f"README.md lacks the {begin} ... {end} markers")
        readme = f"{head}{begin}\n{markdown()}{end}{tail}"
    return readme


def main() -> int:
    README.write_text(with_tables(README.read_text()))
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
