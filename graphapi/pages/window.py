"""The time window of a page: the API's ``from``/``to`` (``request_args.window_arg``), or
``last`` = one of a few presets, which stays "the last hour" on every reload and link."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app, request

from graph.nodegraph_fields import iso
from graph.request import Window
from graphapi.request_args import bad, text_arg, window_arg

PRESETS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600}


@dataclass(frozen=True)
class PageWindow:
    window: Window
    last: str  # a preset name, or '' for an explicit from/to

    def params(self) -> dict:
        """The query arguments that give this window again (for links between pages)."""
        if self.last:
            return {"last": self.last}
        return {"from": iso(self.window.from_ns), "to": iso(self.window.to_ns)}

    def wider(self) -> dict | None:
        """Arguments of the next longer preset that is allowed, or None when none is."""
        top = current_app.config["MAX_WINDOW_SECONDS"]
        for name, seconds in PRESETS.items():
            if self.window.seconds < seconds <= top:
                return {"last": name}
        return None


def page_window() -> PageWindow:
    """The request's window; a 400 names what is wrong with it. ``last`` wins over from/to
    (the window form sends both: a preset chosen while from/to still hold a window)."""
    args = request.args
    last = text_arg("last", args.get("last"))
    if not (last or args.get("from") or args.get("to")):
        default = current_app.config["DEFAULT_WINDOW_SECONDS"]
        last = next((name for name, s in PRESETS.items() if s == default), "")
        if not last:
            return PageWindow(window_arg(), "")
    if not last:
        return PageWindow(window_arg(), "")
    if last not in PRESETS:
        raise bad(f"last={last!r} is not one of {', '.join(PRESETS)}")
    seconds = min(PRESETS[last], current_app.config["MAX_WINDOW_SECONDS"])
    now = time.time_ns()
    return PageWindow(Window(now - seconds * 10**9, now), last)
