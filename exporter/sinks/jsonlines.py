"""A debugging sink: one JSON object per event, to a file or stdout."""

from __future__ import annotations

import json
import sys

from schema.events import as_dict


class JsonLinesSink:
    def __init__(self, path: str = "-"):
        self._own = path != "-"
        self._out = open(path, "a", encoding="utf-8") if self._own else sys.stdout

    def write(self, events: list) -> None:
        lines = [json.dumps({"type": type(e).__name__, **as_dict(e)}) for e in events]
        if lines:
            self._out.write("\n".join(lines) + "\n")
            self._out.flush()

    def close(self) -> None:
        if self._own:
            self._out.close()
