"""The detector: follows each decoded batch, keeps the ancestry, raises flags by rule.

``observe(events)`` runs in the exporter's drain loop on every batch (the hot path): it routes
each event by class and kind with cheap early exits (a fork, an ok exit and most execs touch a
dict or two and nothing else), and returns the flags raised, which the exporter sends to the
same sinks as the events. A rule that matches goes through, in order:

1. repeats: the same rule for the same program under the same parent in the same container
   within ``flag_repeat_window_seconds`` of a stored flag is counted (as that flag was) but not
   stored again (a server spawning a shell per request, a loop executing from /tmp: one flag,
   every occurrence counted);
2. its exceptions in the rules file: the first that matches silences it (counted) or sets its
   severity (named in the flag's ``exception``);
3. a budget: at most ``flag_stored_per_rule_max`` flags of one rule are stored per repeat
   window, the rest counted (a script running thousands of programs from /tmp cannot flood
   the store; the metric still shows every one);
4. a FlagEvent about the event's process (and connection).

Baseline policies (exporter/flags/policies.py) plug in as another family (``add_family``) that
raises its flags, kind ``policy``, through ``add_flag``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter, defaultdict

from exporter.flags.ancestry import FD_PATH, NOT_KNOWN, PROGRAM, SERVER, Ancestry, program_of
from exporter.flags.families.connect_rules import ConnectRules
from exporter.flags.families.exec_rules import (
    EXEC_FROM_TMP,
    FROM_TMP,
    ExecRules,
    chosen_by_argv,
    exe_name,
)
from exporter.flags.families.exit_rules import ExitRules
from exporter.flags.flag_about import flag_about
from exporter.flags.rulebook import Rulebook
from schema.events import (
    ConnectionEvent,
    FlagEvent,
    ListenEvent,
    ProcessEvent,
    field_indexes,
    from_row,
)

REPEATS_MAX = 16384
PROGRAMS_MAX = 4096
PROCESS, CONNECTION, LISTEN = 1, 2, 3

# A process event is read by field index: the exporter hands the process probe's events over as
# plain tuples in ProcessEvent's field order (schema.column_batch.RowBatch), and a ProcessEvent
# is a tuple in the same order, so the hot path reads either alike.
KIND, TIME, KEY, PARENT_KEY, FILENAME, EXE_PATH, CWD, OUTCOME, CONTAINER = field_indexes(
    ProcessEvent, "kind", "time_ns", "process_key", "parent_key", "filename", "exe_path", "cwd",
    "outcome", "container_id",
)  # fmt: skip


def process_event(row) -> ProcessEvent:
    """The event object of a process row (itself if it is one): for the rules and the
    families, which read events by name, on the few rows they look at."""
    return row if row.__class__ is not tuple else from_row(ProcessEvent, row)


class Detector:
    def __init__(self, rulebook: Rulebook, thresholds: dict, clock=time.time_ns):
        self.rulebook = rulebook
        self.rules = rulebook.rules
        self.exceptions = rulebook.exceptions
        self.clock = clock
        self.ancestry = Ancestry(int(thresholds["flag_ancestry_max_processes"]))
        self.repeat_ns = int(thresholds["flag_repeat_window_seconds"] * 1_000_000_000)
        self.stored_max = int(thresholds["flag_stored_per_rule_max"])
        self.exec_rules = ExecRules(self.rules, self.emit)
        self.exec_rules.repeat = self._counted_repeat
        self.exit_rules = ExitRules(self.rules, thresholds, self.emit)
        self.connect_rules = ConnectRules(self.rules, thresholds, self.emit)
        # Counts (``+= 1`` on a defaultdict is twice as fast as on a Counter, a Python class;
        # raised_total() and not_stored_total() give Counters).
        self.raised: defaultdict = defaultdict(int)  # (rule, class, severity): stored or budget
        self.repeats: defaultdict = defaultdict(int)  # (rule, class, severity): not stored again
        self.not_stored: defaultdict = defaultdict(int)  # (rule, "budget")
        self.excepted: defaultdict = defaultdict(int)  # rule
        self.events_seen = 0
        self.cpu_ns = 0  # this detector's own CPU time (thread CPU clock, per batch)
        self._routes: dict[type, int | None] = {}
        # file name, or (file name, executable's path) -> (program, name bits)
        self._programs: dict[str | tuple[str, ...], tuple[str, int]] = {}
        self._last_stored: dict[tuple, tuple] = {}  # repeat key -> (time, counted as)
        self._budgets: dict[str, list[int]] = {}  # rule -> [window start, flags stored in it]
        self._out: list[FlagEvent] = []
        self._run_id = os.urandom(4).hex()
        self._seq = itertools.count()
        # Families added later (baseline policies): called on every exec, listen, connection.
        self._exec_hooks: list = []
        self._listen_hooks: list = []
        self._connection_hooks: list = []

    def add_family(self, family) -> None:
        """Another family of rules (e.g. baseline policies): its ``on_exec(ev, program)``,
        ``on_listen(ev)`` and ``on_connection(ev)``, where it has them, see every such event
        after the built-in rules; it raises flags through ``emit`` (``kind="policy"``)."""
        for name, hooks in (("on_exec", self._exec_hooks), ("on_listen", self._listen_hooks),
                            ("on_connection", self._connection_hooks)):  # fmt: skip
            if hasattr(family, name):
                hooks.append(getattr(family, name))

    def add_flag(self, flag: FlagEvent, stored: bool = True) -> None:
        """A flag a family raised by its own logic (baseline policies: once per process and
        deviation): counted like a rule's, and stored with this batch's flags unless not
        ``stored`` (a repeat, counted only)."""
        counted_as = (flag.rule_id, flag.flag_class, flag.severity)
        if stored:
            self.raised[counted_as] += 1
            self._out.append(flag)
        else:
            self.repeats[counted_as] += 1

    def _route(self, cls) -> int | None:
        found = self._routes.get(cls, 0)
        if found == 0 and cls is tuple:  # a process row (a RowBatch's)
            found = self._routes[cls] = PROCESS
        elif found == 0:
            found = self._routes[cls] = next(
                (r for base, r in ((ProcessEvent, PROCESS), (ConnectionEvent, CONNECTION),
                                   (ListenEvent, LISTEN)) if issubclass(cls, base)),
                None,
            )  # fmt: skip
        return found

    def observe(self, events: list) -> list[FlagEvent]:
        """The flags this batch raises (most batches: none). ``events``: event objects, and
        process rows (plain tuples in ProcessEvent's field order)."""
        cpu0 = time.thread_time_ns()
        out = self._out = []
        anc, routes, programs = self.ancestry, self._routes, self._programs
        procs, cap = anc.procs, anc.max_processes
        exec_rules, exit_rules = self.exec_rules, self.exit_rules
        tracks_servers, suspect_test = exec_rules.tracks_servers, exec_rules.suspect(ProcessEvent)
        exec_hooks, listen_hooks = self._exec_hooks, self._listen_hooks
        connection_hooks = self._connection_hooks
        last_stored, repeat_ns, repeats = self._last_stored, self.repeat_ns, self.repeats
        for ev in events:
            cls = ev.__class__
            route = routes.get(cls) or self._route(cls)
            if route == PROCESS:
                kind = ev[KIND]
                if kind == "fork":
                    # Ancestry.fork(), inlined: a call less for every process on the host.
                    parent_key = ev[PARENT_KEY]
                    parent = procs.get(parent_key, NOT_KNOWN)
                    if len(procs) >= cap:
                        anc.make_room(ev[KEY])
                    procs[ev[KEY]] = (parent_key, parent[PROGRAM], parent[SERVER])
                elif kind == "exec":
                    # The common exec (no rule looks at its name, nothing suspect in its
                    # context): the ancestry's update and the hooks, nothing else.
                    # Kept by file name, and by the executable's path where that differs (a
                    # relative name, a symlink, a script's interpreter): the program is named
                    # by the one, exec_from_tmp reads where the file is (run_from) from both.
                    # (A relative name: a script's place depends on the working directory; so
                    # does /proc/self/cwd/x's.)
                    filename, path = ev[FILENAME], ev[EXE_PATH]
                    name = (
                        filename if path == filename or not path
                        else (filename, path) if filename[:1] == "/" and filename[:6] != "/proc/"
                        else (filename, path, ev[CWD])
                    )  # fmt: skip
                    program, bits = programs.get(name) or self._program(name, process_event(ev))
                    key, parent_key = ev[KEY], ev[PARENT_KEY]
                    own = procs.get(key)  # Ancestry.exec(), inlined
                    if own is None and len(procs) >= cap:
                        anc.make_room(key)
                    # A new image: it serves again only once it listens or accepts itself.
                    procs[key] = (parent_key, program, False)
                    suspect = suspect_test(ev)
                    if bits == FROM_TMP and not suspect:
                        # Only exec_from_tmp can match: a loop running a program from /tmp
                        # repeats it, counted here without a call (emit's first step, inlined).
                        last = last_stored.get((EXEC_FROM_TMP, parent_key, program, ev[CONTAINER]))
                        if last is not None and 0 <= ev[TIME] - last[0] < repeat_ns:
                            repeats[last[1]] += 1
                            bits = 0
                    if bits or suspect:
                        serving = (own is not None and own[SERVER]) or procs.get(
                            parent_key, NOT_KNOWN
                        )[SERVER]
                        exec_rules.on_exec(process_event(ev), program, serving, bits)
                    for hook in exec_hooks:
                        hook(process_event(ev), program)
                elif kind == "exit":
                    entry = procs.pop(ev[KEY], None)  # Ancestry.exit(), inlined
                    if ev[OUTCOME] != "ok":
                        ev = process_event(ev)
                        exit_rules.on_failed_exit(ev, entry[PROGRAM] if entry else ev.comm)
                else:
                    self._rare_process_event(process_event(ev), kind)
            elif route == CONNECTION:
                for hook in connection_hooks:
                    hook(ev)
                if ev.kind == "connect_failed":
                    self.connect_rules.on_connect_failed(ev, anc.program(ev.process_key))
                elif (
                    tracks_servers
                    and ev.direction == "inbound"
                    and ev.process_key
                    and exec_rules.network_facing(ev.remote_addr)
                ):
                    anc.serving(ev.process_key)
            elif route == LISTEN:
                for hook in listen_hooks:
                    hook(ev)
                if (
                    tracks_servers
                    and ev.kind != "listen_close"
                    and ev.process_key
                    and exec_rules.network_facing(ev.local_addr)
                ):
                    anc.serving(ev.process_key)
        self.events_seen += len(events)
        self.cpu_ns += time.thread_time_ns() - cpu0
        return out

    def _rare_process_event(self, ev, kind: str) -> None:
        """Process events other than fork, exec and exit (a few per minute, exec_failed
        aside, which no rule reads)."""
        anc = self.ancestry
        if kind == "oom_kill":
            self.exit_rules.on_oom_kill(ev, anc.program(ev.process_key) or ev.comm)
        elif kind == "cred_change":
            self.exec_rules.on_cred_change(ev, anc.program(ev.process_key) or ev.comm)
        elif kind == "scan":
            anc.known(ev.process_key, ev.parent_key, program_of(ev.filename, ev.comm))

    def raised_total(self) -> Counter:
        """Flags raised by (rule, class, severity): stored, over budget, and repeats."""
        return Counter(dict(self.raised)) + Counter(dict(self.repeats))

    def not_stored_total(self) -> Counter:
        """Flags counted but not stored, by (rule, reason: repeat | budget)."""
        total = Counter(dict(self.not_stored))
        for (rule, _, _), n in dict(self.repeats).items():
            total[rule, "repeat"] += n
        return total

    def _program(self, name: str | tuple[str, ...], ev) -> tuple[str, int]:
        """(program, name bits) of an exec, kept per file name (and executable's path, and
        working directory for a relative name)."""
        if len(self._programs) >= PROGRAMS_MAX:
            self._programs.clear()
        filename = ev.filename
        program = program_of(filename, ev.comm, getattr(ev, "argv", ()))
        found = (program, self.exec_rules.name_bits(ev, program))
        # An fd's path names no one program; busybox's or ld.so's argv says which it runs.
        if (
            filename
            and not FD_PATH.match(filename)
            and not chosen_by_argv(ev, exe_name(ev), program)
        ):
            self._programs[name] = found
        return found

    # -- raising ---------------------------------------------------------------------------
    def emit(
        self, rule_id: str, ev, program: str, description: str, occurrences: int = 1,
        connection_id: str = "", kind: str = "rule",
    ) -> None:  # fmt: skip
        """A rule matched ``ev`` (the event that decided it): repeats, exceptions, budget, flag."""
        if self._counted_repeat(rule_id, ev, program):
            return
        rule = self.rules[rule_id]
        parent_key = getattr(ev, "parent_key", None)
        if parent_key is None:  # a connection event: its process's parent, if known
            parent_key = self.ancestry.parent(ev.process_key)
        t = ev.time_ns
        key = (rule_id, parent_key, program, ev.container_id)
        severity, exception = rule.severity, ""
        candidates = self.exceptions.get(rule_id)
        if candidates:
            exc = self._exception_for(candidates, ev, program, parent_key)
            if exc is not None:
                if not exc.severity:
                    self.excepted[rule_id] += 1
                    return
                severity, exception = exc.severity, exc.id
        counted_as = (rule_id, rule.flag_class, severity)
        self.raised[counted_as] += 1
        budget = self._budgets.get(rule_id)
        if budget is None or not 0 <= t - budget[0] < self.repeat_ns:
            budget = self._budgets[rule_id] = [t, 0]
        if budget[1] >= self.stored_max:
            self.not_stored[rule_id, "budget"] += 1
            return
        budget[1] += 1
        if len(self._last_stored) >= REPEATS_MAX:
            self._last_stored.clear()
        self._last_stored[key] = (t, counted_as)
        self._out.append(
            flag_about(
                ev,
                event_id=f"{self._run_id}-{next(self._seq)}",
                kind=kind,
                time_ns=self.clock(),
                rule_id=rule_id,
                flag_class=rule.flag_class,
                severity=severity,
                technique=rule.technique,
                description=description,
                program=program,
                parent_key=parent_key,
                connection_id=connection_id,
                occurrences=occurrences,
                exception=exception,
                workload=getattr(ev, "workload", ""),
            )
        )

    def _counted_repeat(self, rule_id: str, ev, program: str, parent_key=None) -> bool:
        """Whether ``rule_id`` on ``ev`` repeats a stored flag (the same rule for the same
        program under the same parent in the same container, within the repeat window): then
        it is counted as that flag was, exception included, and not stored again. A family
        asks before making the flag's description (a loop's hot case)."""
        if parent_key is None:
            parent_key = getattr(ev, "parent_key", None)
        if parent_key is None:  # a connection event: its process's parent, if known
            parent_key = self.ancestry.parent(ev.process_key)
        last = self._last_stored.get((rule_id, parent_key, program, ev.container_id))
        if last is not None and 0 <= ev.time_ns - last[0] < self.repeat_ns:
            self.repeats[last[1]] += 1
            return True
        return False

    def _exception_for(self, candidates, ev, program: str, parent_key: str):
        """The first exception of the rule whose every condition matches, or None."""
        for exc in candidates:
            if exc.programs is not None and not exc.programs.match(program):
                continue
            if exc.containers is not None and not exc.containers.match(ev.container_id):
                continue
            if exc.users is not None and not (
                getattr(ev, "uid", None) in exc.users or getattr(ev, "auid", None) in exc.users
            ):
                continue
            if exc.ancestors is not None and not any(
                exc.ancestors.match(p) for p in self.ancestry.ancestor_programs(parent_key)
            ):
                continue
            return exc
        return None


def load_detector(rules_path=None, thresholds: dict | None = None) -> Detector:
    """A detector from the rules file (default: the one shipped) and the thresholds file's
    flag_* numbers (default: mixin/mixin.yaml)."""
    from exporter.flags.rulebook import load_rulebook
    from mixin.config import load_config

    if thresholds is None:
        thresholds = load_config().raw["thresholds"]
    return Detector(load_rulebook(rules_path), thresholds)
