"""Query-string arguments, checked: every bad value becomes a 400 that says what is wrong.

- ``from`` / ``to``: epoch milliseconds (what Grafana's ``${__from}`` gives) or RFC 3339; by
  default the last ``DEFAULT_WINDOW_SECONDS`` up to now. The window must be non-empty and at
  most ``MAX_WINDOW_SECONDS`` long.
- ``host``: one host or a comma-separated list; empty means every host.
- ``container``: a container id; empty or ``__all__`` (the dashboards' "All") means any.
- ``limit``: 1 .. ``MAX_LIMIT`` (at most 1,500; Grafana's Node Graph draws 200, the default).
- ``focus``: see ``parse_focus``.
"""

from __future__ import annotations

import ipaddress
import re
import time

from flask import current_app, request
from werkzeug.exceptions import BadRequest

from graph.nodegraph_fields import ALERT, CONTAINER, ENDPOINT, GROUP, HOST, PEER, SERVICE, TRACE
from graph.request import (
    ADDRESS,
    ALERT_FOCUS,
    CONTAINER_FOCUS,
    GROUP_FOCUS,
    HOST_FOCUS,
    PID,
    PROCESS,
    TRACE_FOCUS,
    Focus,
    Scope,
    Window,
)
from store.received_alerts import parse_time_ns

ALL_CONTAINERS = "__all__"
PANEL_MAX_NODES = 1500
MAX_TEXT = 512
# Printable text without control characters: hosts, containers, keys (values are bound as
# parameters, so this is about clear errors, not about SQL).
TEXT = re.compile(r"[^\x00-\x1f\x7f]*")  # fullmatch: "$" would let a final newline through
MIN_NS, MAX_NS = 0, 2**62  # 2116: anything later is a mistake


def bad(message: str) -> BadRequest:
    return BadRequest(description=message)


FOCUS_HELP = (
    "focus must be a process key (host:pid:start_ticks), pid@host or host:pid, an "
    "address:port ([v6 address]:port), alert=<fingerprint>, trace=<id>, host=<name>, "
    "container=<id>, or a node id from a graph"
)


def refuse_repeated_args() -> None:
    """A query parameter given twice is a 400: which one was meant is not ours to guess."""
    for name, values in request.args.lists():
        if len(values) > 1:
            raise bad(f"{name[:MAX_TEXT]!r} is given {len(values)} times; give it once")


def text_arg(name: str, value: str | None) -> str:
    # Taken as sent (not stripped: str.strip() also takes control characters), so that what
    # is accepted is exactly what the OpenAPI document describes.
    value = value or ""
    if len(value) > MAX_TEXT:
        raise bad(f"{name} is longer than {MAX_TEXT} characters")
    if not TEXT.fullmatch(value):
        raise bad(f"{name} contains control characters")
    return value


def time_arg(name: str, value: str) -> int:
    """Epoch ms (digits) or RFC 3339 -> ns since the epoch."""
    value = text_arg(name, value)
    if _digits(value):
        ns = int(value[:20]) * 1_000_000
    else:
        try:
            ns = parse_time_ns(value)
        except (ValueError, OverflowError):
            raise bad(f"{name}={value!r} is neither epoch ms nor an RFC 3339 time") from None
    if not MIN_NS <= ns < MAX_NS:
        raise bad(f"{name}={value!r} is out of range")
    return ns


def window_arg(args=None) -> Window:
    args = request.args if args is None else args
    cfg = current_app.config
    now = time.time_ns()
    to_ns = time_arg("to", args["to"]) if args.get("to") else now
    if args.get("from"):
        from_ns = time_arg("from", args["from"])
    else:
        from_ns = max(0, to_ns - int(cfg["DEFAULT_WINDOW_SECONDS"] * 1e9))
    if to_ns <= from_ns:
        raise bad("the window is empty or inverted: 'to' must be after 'from'")
    if to_ns - from_ns > cfg["MAX_WINDOW_SECONDS"] * 1e9:
        raise bad(
            f"the window is {(to_ns - from_ns) / 1e9:.0f} s long; at most "
            f"{cfg['MAX_WINDOW_SECONDS']} s is allowed"
        )
    return Window(from_ns, to_ns)


def scope_arg(args=None) -> Scope:
    args = request.args if args is None else args
    names = text_arg("host", args.get("host")).split(",")
    hosts = tuple(h for h in (n.strip() for n in names) if h)
    container = text_arg("container", args.get("container"))
    if container == ALL_CONTAINERS:
        container = ""
    return Scope(hosts=hosts, container=container)


def limit_arg(args=None) -> int:
    args = request.args if args is None else args
    cfg = current_app.config
    value = text_arg("limit", args.get("limit"))
    if not value:
        return cfg["DEFAULT_LIMIT"]
    if not _digits(value) or len(value) > 9:
        raise bad(f"limit={value!r} is not a whole number")
    limit = int(value)
    top = min(cfg["MAX_LIMIT"], PANEL_MAX_NODES)
    if not 1 <= limit <= top:
        raise bad(f"limit={limit} is out of range: 1 to {top}")
    return limit


def focus_arg(args=None) -> Focus | None:
    args = request.args if args is None else args
    value = text_arg("focus", args.get("focus"))
    return parse_focus(value) if value else None


def _digits(text: str) -> bool:
    """ASCII digits only (str.isdigit also accepts other scripts' digits, which int() rejects)."""
    return text.isascii() and text.isdigit()


def _port(text: str) -> int | None:
    if _digits(text) and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    return None


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _endpoint(text: str) -> Focus | None:
    """``addr:port`` or ``[v6]:port`` with a literal IP address."""
    m = re.match(r"\[([0-9A-Fa-f:.]+)\]:(\d+)$", text) or re.match(r"([0-9.]+):(\d+)$", text)
    if not m:
        return None
    addr, port = _ip(m.group(1)), _port(m.group(2))
    if addr is None or port is None:
        return None
    return Focus(ADDRESS, text, addr=addr, port=port)


def parse_focus(value: str) -> Focus:
    """A focus string -> Focus; a 400 explaining the accepted forms when it is none of them."""
    prefixes = (
        (ALERT, ALERT_FOCUS), (HOST, HOST_FOCUS), (CONTAINER, CONTAINER_FOCUS),
        (TRACE, TRACE_FOCUS),
    )  # fmt: skip
    for prefix, kind in prefixes:
        if value.startswith(prefix) and len(value) > len(prefix):
            return Focus(kind, value[len(prefix) :])
    if value.startswith(GROUP) and "|" in value:
        return Focus(GROUP_FOCUS, value[len(GROUP) :])
    if value.startswith(PEER) and _ip(value[len(PEER) :]):
        return Focus(ADDRESS, value, addr=_ip(value[len(PEER) :]), port=0)
    if value.startswith(SERVICE) and "|" in value:
        host, _, where = value[len(SERVICE) :].rpartition("|")
        endpoint = _endpoint(where)
        if endpoint is not None:
            return Focus(ADDRESS, value, host=host, addr=endpoint.addr, port=endpoint.port)
    endpoint = _endpoint(value.removeprefix(ENDPOINT))
    if endpoint is not None:
        return endpoint
    value = re.sub(r"#[0-9]{1,2}$", "", value)  # a process's earlier program: the process
    m = re.match(r"(\d+)@(.+)$", value)
    if m:
        return _pid_focus(m.group(2), m.group(1), value)
    parts = value.rsplit(":", 2)
    if len(parts) == 3 and parts[0] and _digits(parts[1]) and _digits(parts[2]):
        if int(parts[1]) < 2**32 and len(parts[2]) <= 19:
            return Focus(PROCESS, value, host=parts[0], pid=int(parts[1]))
    head, _, tail = value.rpartition(":")
    if head and _digits(tail):
        return _pid_focus(head, tail, value)
    raise bad(f"focus={value!r} is not understood: {FOCUS_HELP}")


def _pid_focus(host: str, pid: str, value: str) -> Focus:
    if len(pid) > 10 or int(pid) > 2**32 - 1:
        raise bad(f"focus={value!r}: {pid} is not a valid pid")
    return Focus(PID, value, host=host, pid=int(pid))
