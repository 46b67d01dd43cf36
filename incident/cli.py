"""``groundtruth timeline``, ``groundtruth ancestry`` and ``groundtruth postmortem``.

Each command parses and checks its input first (times, filters, pid), opens the store, runs its
bounded queries and writes its output. Whatever goes wrong ends in one line on stderr and a
non-zero status (``IncidentError.exit_code``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from incident import ancestry as A
from incident import queries as Q
from incident.errors import IncidentError
from incident.filters import parse_remote, parse_user
from incident.render import FORMATS, WRITERS, printable
from incident.store_access import Reader, add_store_arguments, open_from_args
from incident.timeline import TimelineRequest, build_timeline, check_host, require_entries
from incident.times import FORMS, Window, format_ns, get_zone, make_window, parse_time
from store.writer import short_error

TIME_HELP = f"times: {FORMS}; a time without an offset is read in --tz"


def _common(p: argparse.ArgumentParser) -> None:
    add_store_arguments(p)
    p.add_argument("--tz", help="timezone to read and show times in (default: this machine's)")


def _window_arguments(p: argparse.ArgumentParser, since_default: str | None) -> None:
    p.add_argument("--since", metavar="DURATION", help="the last DURATION (15m, 2h, 1d)")
    p.add_argument("--from", dest="start", metavar="TIME", help="window start")
    p.add_argument("--to", dest="end", metavar="TIME", help="window end (default now)")
    p.set_defaults(since_default=since_default)


def guarded(name: str, command):
    """Runs a command; its errors become one line on stderr and the error's exit status."""

    def run(args) -> int:
        try:
            return command(args)
        except IncidentError as e:
            print(f"groundtruth {name}: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            print(f"groundtruth {name}: interrupted", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - unexpected, but still one line for the user
            print(f"groundtruth {name}: {short_error(e)}", file=sys.stderr)
            return 1

    return run


def window_from_args(args, zone, now_ns: int):
    return make_window(args.since, args.start, args.end, now_ns, zone, args.since_default)


# --- timeline ---------------------------------------------------------------------------------


def timeline_request(args, zone, now_ns: int) -> TimelineRequest:
    """Everything the timeline needs, checked before the store is opened."""
    if not args.host:
        raise IncidentError("--host is required")
    if args.limit <= 0:
        raise IncidentError("--limit must be a positive number")
    addr, port = parse_remote(args.remote)
    filters = Q.Filters(
        container=args.container or "",
        program=args.program or "",
        uid=parse_user(args.user),
        remote_addr=addr,
        remote_port=port,
    )
    window = window_from_args(args, zone, now_ns)
    # An alert is about a host or container, never a program, user or remote address.
    alerts = not (args.no_alerts or filters.program or filters.uid is not None or addr or port)
    return TimelineRequest(args.host, window, filters, args.limit, alerts=alerts)


def run_timeline(args, out=None) -> int:
    out = out or sys.stdout
    zone = get_zone(args.tz)
    req = timeline_request(args, zone, time.time_ns())
    store = open_from_args(args)
    try:
        reader = Reader(store)
        check_host(reader, req.host)
        timeline = build_timeline(reader, req)
    finally:
        store.close()
    require_entries(timeline, req.window.describe(zone))
    WRITERS[args.format](timeline.entries, out, zone)
    for source in timeline.truncated:
        print(
            f"groundtruth timeline: only the first {req.limit} {source} are shown: narrow the "
            "window or the filters, or raise --limit",
            file=sys.stderr,
        )
    return 0


# --- ancestry ---------------------------------------------------------------------------------


def run_ancestry(args, out=None) -> int:
    out = out or sys.stdout
    zone = get_zone(args.tz)
    if args.key is None and args.pid is None:
        raise IncidentError("give a PID (with --host) or --key host:pid:start_ticks")
    if args.key is not None and args.pid is not None:
        raise IncidentError("give either a PID or --key, not both")
    if args.pid is not None and not args.host:
        raise IncidentError("a PID needs --host (pids are per host)")
    if args.key is not None:
        A.split_key(args.key)  # checked before the store is opened
    during, when = ancestry_window(args, zone, time.time_ns())
    store = open_from_args(args)
    try:
        reader = Reader(store)
        if args.key is not None:
            target = A.resolve_key(reader, args.key)
        else:
            check_host(reader, args.host)
            try:
                target = A.resolve_pid(reader, args.host, args.pid, during, when)
            except A.AmbiguousPid as e:
                print(f"groundtruth ancestry: {e}", file=sys.stderr)
                write_processes([(0, p) for p in e.candidates], out, zone, args.format)
                return e.exit_code
        chain, missing = A.chain(reader, target)
        tree, cut = A.descendants(reader, target) if args.descendants else (None, False)
    finally:
        store.close()
    rows = [(depth, p) for depth, p in enumerate(chain)]
    if tree is not None:
        rows += [(len(chain) - 1 + d, n.process) for d, n in _tree_rows(tree, 0) if d > 0]
    if missing and args.format == "table":
        out.write(f"(parent {missing} is not in the store: started before events were kept)\n")
    write_processes(rows, out, zone, args.format, target.key)
    if cut:
        print(f"groundtruth ancestry: descendants cut at {A.MAX_DESCENDANTS}", file=sys.stderr)
    return 0


def ancestry_window(args, zone, now_ns: int) -> tuple[Window | None, str]:
    """Which of a reused pid's processes are meant: alive at --at, or during --from/--to."""
    if args.at and (args.start or args.end or args.since):
        raise IncidentError("give either --at or a window (--since, --from/--to), not both")
    if args.at:
        at = parse_time(args.at, now_ns, zone)
        return Window(at, at + 1), f"at {format_ns(at, zone)}"
    if args.start or args.end or args.since:
        w = window_from_args(args, zone, now_ns)
        return w, f"from {w.describe(zone)}"
    return None, ""


def _tree_rows(tree: A.Tree, depth: int):
    yield depth, tree
    for child in tree.children:
        yield from _tree_rows(child, depth + 1)


def process_record(p: A.Process, zone, depth: int) -> dict:
    return {
        "depth": depth,
        "process_key": p.key,
        "host": p.host,
        "pid": p.pid,
        "ppid": p.ppid,
        "parent_key": p.parent_key,
        "uid": p.uid,
        "start": format_ns(p.start_ns, zone) if p.start_ns else "",
        "start_ns": p.start_ns,
        "container": p.container,
        "argv": p.argv,
        "command": p.command,
        "execs": p.execs,
        "exit": p.ended,
        "exit_ns": p.exit_ns,
        "exit_code": p.exit_code if p.exit_ns else None,
        "signal": p.signal,
        "outcome": p.outcome,
        "oom_killed": p.oom_killed,
    }


def write_processes(rows, out, zone, fmt: str, target_key: str = "") -> None:
    if fmt == "jsonl":
        for depth, p in rows:
            out.write(json.dumps(process_record(p, zone, depth), ensure_ascii=False) + "\n")
        return
    for depth, p in rows:
        r = process_record(p, zone, depth)
        indent = "   " * (depth - 1) + "└─ " if depth else ""
        mark = "* " if p.key == target_key else ""
        uid = "?" if r["uid"] is None else r["uid"]
        where = f"  container {r['container'][:12]}" if r["container"] else ""
        out.write(
            f"{indent}{mark}pid {p.pid}  uid {uid}  started {r['start'] or '?'}{where}  "
            f"[{r['exit']}]  {printable(p.command)}  ({printable(p.key)})\n"
        )


# --- registration -----------------------------------------------------------------------------


def register(sub) -> None:
    from incident.postmortem_cli import add_postmortem_parser
    from incident.traces_cli import add_traces_parser

    p = sub.add_parser(
        "timeline",
        help="one host's ordered timeline of execs, exits, connections, OOM kills and alerts",
        description="One ordered timeline of what happened on a host: execs, exits with their "
        "outcome, TCP connections with outcome and bytes, OOM kills and received alerts. "
        + TIME_HELP
        + ". Exit status 1 when the host is unknown or the window is empty.",
    )
    _common(p)
    p.add_argument("--host", required=True, help="host name, as the exporter recorded it")
    p.add_argument("--container", help="only this container (id or its first characters)")
    _window_arguments(p, "15m")
    p.add_argument("--program", help="only this program (command name or executable)")
    p.add_argument("--user", help="only processes of this user (uid, or name on this machine)")
    p.add_argument("--remote", help="only connections to/from ADDR, ADDR:PORT, [V6]:PORT, :PORT")
    p.add_argument(
        "--no-alerts",
        action="store_true",
        help="leave received alerts out (so do --program, --user and --remote)",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--limit", type=int, default=5000, help="rows per source (default 5000)")
    p.set_defaults(func=guarded("timeline", run_timeline))

    p = sub.add_parser(
        "ancestry",
        help="a process's chain of parents from the root, and its descendants",
        description="The chain from the root to a process, each with argv, user, start time, "
        "container and exit. A pid used by several processes (ever, or alive at --at, or "
        "during --from/--to) lists them (exit status 3): pick one with --key. " + TIME_HELP + ".",
    )
    _common(p)
    p.add_argument("pid", nargs="?", type=int, help="process id (with --host)")
    p.add_argument("--host", help="host name, as the exporter recorded it")
    p.add_argument("--at", metavar="TIME", help="the process with this pid alive at TIME")
    _window_arguments(p, None)
    p.add_argument("--key", help="process key host:pid:start_ticks instead of a pid")
    p.add_argument("--descendants", action="store_true", help="also list its descendants")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.set_defaults(func=guarded("ancestry", run_ancestry))

    add_postmortem_parser(sub, _common, guarded)
    add_traces_parser(sub, _common, _window_arguments, guarded, window_from_args)
