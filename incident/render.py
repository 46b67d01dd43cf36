"""Timeline output: a terminal table, JSON lines, or CSV.

The table is for reading: aligned columns, times in the display timezone, and on a terminal the
detail column cut to the screen width (piped output keeps every character). JSON lines and CSV
are for tools: every raw value, times also in ns since the epoch.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import tzinfo

from incident.timeline import Entry
from incident.times import format_ns

FORMATS = ("table", "jsonl", "csv")
CSV_COLUMNS = (
    "time",
    "time_ns",
    "host",
    "source",
    "kind",
    "pid",
    "program",
    "container",
    "process_key",
    "detail",
    "fields",
)
# Table columns: (heading, value of an entry). Detail comes last and takes the rest.
_TABLE = (
    ("TIME", None),
    ("KIND", lambda e: e.kind),
    ("PID", lambda e: str(e.pid) if e.pid else ""),
    ("PROGRAM", lambda e: e.program),
    ("CONTAINER", lambda e: e.container),
)


def as_record(entry: Entry, zone: tzinfo) -> dict:
    return {
        "time": format_ns(entry.time_ns, zone, "microseconds"),
        "time_ns": entry.time_ns,
        "host": entry.host,
        "source": entry.source,
        "kind": entry.kind,
        "pid": entry.pid,
        "program": entry.program,
        "container": entry.container,
        "process_key": entry.process_key,
        "detail": entry.detail,
        **entry.fields,
    }


def write_jsonl(entries: list[Entry], out, zone: tzinfo) -> None:
    for e in entries:
        out.write(json.dumps(as_record(e, zone), ensure_ascii=False) + "\n")


def write_csv(entries: list[Entry], out, zone: tzinfo) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        record = as_record(e, zone)
        fields = json.dumps(e.fields, ensure_ascii=False, sort_keys=True)
        writer.writerow([record[c] for c in CSV_COLUMNS[:-1]] + [fields])


_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {10: "\\n", 9: "\\t", 13: "\\r", 127: "\\x7f"}


def printable(text: str) -> str:
    """One line whatever the text holds: control characters (a newline in argv) escaped."""
    return text.translate(_CONTROL)


def table_lines(entries: list[Entry], zone: tzinfo, width: int | None = None) -> list[str]:
    """Aligned rows, one line per entry; with ``width``, the detail column is cut to fit it."""
    rows = [
        [format_ns(e.time_ns, zone)]
        + [printable(value(e)) for _, value in _TABLE[1:]]
        + [printable(e.detail)]
        for e in entries
    ]
    headings = [h for h, _ in _TABLE] + ["DETAIL"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings[:-1])]
    lines = []
    for row in [headings, *rows]:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
        line = f"{head}  {row[-1]}"
        if width and len(line) > width:
            line = line[: max(width - 1, len(head) + 3)] + "…"
        lines.append(line)
    return lines


def write_table(entries: list[Entry], out, zone: tzinfo) -> None:
    width = shutil.get_terminal_size((160, 24)).columns if _isatty(out) else None
    for line in table_lines(entries, zone, width):
        out.write(line + "\n")


def _isatty(out) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


WRITERS = {"table": write_table, "jsonl": write_jsonl, "csv": write_csv}
