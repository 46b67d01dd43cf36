"""Security rules decided at exec (and at a credential change): what ran, from where, started
by whom, with which terminal, sockets and credentials.

The security context fields of process events (``euid``, ``auid``, ``tty``, ``stdin_type``,
``stdout_type``, ``exe_deleted``, ``exe_memfd``; ``prev_euid`` on ``cred_change``) are read
with defaults where an event class lacks them, so these rules run (and stay silent) on an
exporter whose probe does not record them yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from exporter.flags.rulebook import glob_pattern
from schema.events import DEEP_PATH, in_cwd

SHELLS = {"shells": "texts"}
PARAMS = {
    "exec_from_tmp": {"paths": "texts", "interpreters": "texts?"},
    "exec_from_deep_path": {},
    "exec_fileless": {},
    "network_tool_in_container": {"programs": "texts"},
    "shell_from_server": {"shells": "texts", "interpreters": "texts", "local_only": "texts"},
    "reverse_shell": SHELLS,
    "interactive_shell_in_container": SHELLS,
    "privilege_gain": {},
}
ROOT = 0
CLASS_LISTS = ("shells", "interpreters", "programs")  # the lists program_class() matches
AUID_UNSET = 4294967295
SECURITY_FIELDS = ("uid", "euid", "auid", "tty", "stdin_type", "stdout_type", "exe_deleted",
                   "exe_memfd")  # fmt: skip
SECURITY_DEFAULTS = (0, None, AUID_UNSET, "", "", "", 0, 0)
# Program classes, cached per program name; FROM_TMP: the executed file is in a watched
# directory. An exec's name bits (``name_bits``) are these, decided once per file name.
SERVER_SHELL, NETWORK_TOOL, REVERSE_SHELL_PROGRAM, TERMINAL_SHELL, FROM_TMP = 1, 2, 4, 8, 16
SCRIPT_RUNNER = 32  # exec_from_tmp's interpreters: the script it is given is looked at
FROM_DEEP = 64  # the executed file is deeper than the kernel's path walk: where is not known
EXEC_FROM_TMP = "exec_from_tmp"  # the rule FROM_TMP raises
EXEC_FROM_DEEP_PATH = "exec_from_deep_path"  # and FROM_DEEP
WHERE = FROM_TMP | FROM_DEEP  # the bits that say where the file is, not what the program is
PROGRAM_CACHE_MAX = 4096
# An event's security fields, in SECURITY_FIELDS order.
SecurityReader = Callable[[Any], tuple]
# Whether an exec's credentials or executable call for a look (fileless, privilege gain).
SuspectTest = Callable[[Any], bool]


def run_from(ev) -> str:
    """Where the file an exec ran is: its ``exe_path`` (a relative name, a symlink, an fd
    resolved by the kernel); for a script, whose exe_path is its interpreter's, and where there
    is none (a memfd, a recording made before the field), the file name it was given, a
    relative one joined to the working directory."""
    path = getattr(ev, "exe_path", "")
    if path and not getattr(ev, "exe_script", False):
        return path
    return in_cwd(ev.filename, getattr(ev, "cwd", ""))


# One file that is many programs, chosen by the name it is run by: its path says nothing of which.
MULTI_CALL = {"busybox", "toybox"}


def exe_name(ev) -> str:
    """The base name of the file the kernel ran, where it says which program runs: '' for a
    script (its exe_path is its interpreter's; the script is what runs), a multi-call binary,
    or a path not read."""
    path = getattr(ev, "exe_path", "")
    if not path or getattr(ev, "exe_script", False):
        return ""
    name = path.rpartition("/")[2]
    return "" if name in MULTI_CALL or name == DEEP_PATH else name


def is_multi_call(ev) -> bool:
    """Whether the exec is of a multi-call binary (by the file the kernel ran, else by name)."""
    path = getattr(ev, "exe_path", "") or ev.filename
    return path.rpartition("/")[2] in MULTI_CALL


def applet_of(argv) -> tuple[str, Sequence[str]]:
    """(the program a multi-call binary runs, its argv): busybox picks it by argv[0]'s base name
    (``exec -a nc /bin/busybox``, a link /bin/sh), or by argv[1] where argv[0] names busybox
    itself (``busybox nc``)."""
    name = argv[0].rpartition("/")[2] if argv else ""
    if name in MULTI_CALL:
        argv = argv[1:]
        name = argv[0].rpartition("/")[2] if argv else ""
    return name, argv


LOADER_OPTIONS = {"--library-path", "--inhibit-rpath", "--audit", "--preload", "--argv0",
                  "--glibc-hwcaps-prefix", "--glibc-hwcaps-mask"}  # fmt: skip
LOADERS = ("ld-linux", "ld.so")


def loaded_program(ev, name: str) -> str:
    """The program the dynamic loader runs (``ld.so /bin/bash -i``), where the exec (named
    ``name``) is of the loader; else ''."""
    if not name.startswith(LOADERS):
        return ""
    return script_operand(name, getattr(ev, "argv", ())).rpartition("/")[2]


def chosen_by_argv(ev, exe: str, program: str) -> bool:
    """Whether the program an exec runs is chosen by its argv (busybox's applet, ld.so's
    program): its classes are then not kept per file name."""
    return is_multi_call(ev) or (exe or program).startswith(LOADERS)


# An interpreter's options after which its code comes inline, not from a file (a file that code
# runs is an exec of its own), and those that take the next argument as their value, by the
# start of the interpreter's name; any other (a shell): -c, or options bundled with c (sh -ec).
# A value-taking option missing here hides the script: its value is read as the script in its
# place (`bash --rcfile /etc/profile /tmp/x.sh`), so each list is the interpreter's manual's.
INTERPRETER_OPTIONS = {
    "python": ({"-c", "-m"}, {"-W", "-X", "--check-hash-based-pycs"}),
    "pypy": ({"-c", "-m"}, {"-W", "-X", "--jit"}),
    "perl": ({"-e", "-E"}, set()),  # (its other options take their values attached)
    "ruby": ({"-e"}, {"-I", "-r", "-C", "-E", "--encoding", "--external-encoding",
                      "--internal-encoding", "--enable", "--disable"}),
    "node": ({"-e", "--eval", "-p", "--print"},
             {"-r", "--require", "--import", "--loader", "--experimental-loader", "-C",
              "--conditions", "--env-file", "--input-type", "--inspect-port", "--title",
              "--redirect-warnings", "--icu-data-dir", "--openssl-config", "--report-dir",
              "--diagnostic-dir", "--unhandled-rejections", "--dns-result-order",
              "--disable-warning"}),
    # -B, -R and -E take code run around each input line, not instead of a script (-F FILE).
    "php": ({"-r"}, {"-c", "-d", "-z", "-t", "-S", "-B", "-R", "-E"}),
    "lua": ({"-e"}, {"-l"}),
    "tclsh": (set(), {"-encoding"}),
    # The dynamic loader (ld.so PROGRAM): its program is what it runs (ld.so(8)).
    "ld-linux": (set(), LOADER_OPTIONS),
    "ld.so": (set(), LOADER_OPTIONS),
}  # fmt: skip
SHELL_OPTIONS = ({"-c"}, {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
# Options whose value is a file the interpreter runs besides its script (bash --rcfile F, node
# -r F, ruby -rF), by the start of its name as above (a shell's: SHELL_LOADS). A value that is
# not a path (node -r ts-node/register, ruby -rjson: a module found on the load path) is not
# read as one: only one starting with /, ./ or ../.
LOADS = {
    "node": {"-r", "--require", "--import", "--loader", "--experimental-loader"},
    "ruby": {"-r"},
}
SHELL_LOADS = {"--rcfile", "--init-file"}
PATH_STARTS = ("/", "./", "../")
# A shell's inline code that sources a file (sh -c '. /tmp/x', 'cd /; source /tmp/x'): the
# file runs in that shell, no exec of its own. Only a name with a slash is a path (. x searches
# PATH).
SOURCED = re.compile(r"(?:^|[;&|(\n])\s*(?:\.|source)\s+['\"]?([^\s;&|'\")]*/[^\s;&|'\")]*)")


def script_operand(interpreter: str, argv) -> str:
    """The script file ``interpreter`` was given as an argument (``sh /tmp/x.sh``,
    ``python3 -u x.py``): its first argument that is neither an option nor an option's value;
    '' where there is none, or the code comes inline (``sh -c``, ``python3 -m``) or from
    standard input (``-``)."""
    return read_arguments(interpreter, argv)[0]


def read_arguments(interpreter: str, argv) -> tuple[str, list[str]]:
    """(``script_operand``, the files its options load to run besides it: ``LOADS``)."""
    inline, valued = next(
        (o for start, o in INTERPRETER_OPTIONS.items() if interpreter.startswith(start)),
        SHELL_OPTIONS,
    )
    shell = inline is SHELL_OPTIONS[0]
    loads = SHELL_LOADS if shell else _loads_of(interpreter)
    loaded: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            return next(args, ""), loaded
        if arg[:1] not in ("-", "+") or arg in ("-", "+"):
            return ("" if arg == "-" else arg), loaded
        if arg in inline:
            return "", _sourced(shell, next(args, ""), loaded)
        if arg in valued or arg in loads:
            value = next(args, "")
            if arg in loads and value.startswith(PATH_STARTS):
                loaded.append(value)
        elif (at := arg.find("=")) > 0 and arg[:at] in loads:  # --require=F
            if arg[at + 1 :].startswith(PATH_STARTS):
                loaded.append(arg[at + 1 :])
        elif arg[1] != "-" and len(arg) > 2:  # a bundle of short options
            if arg[:2] in loads and arg[2:].startswith(PATH_STARTS):  # ruby -r/tmp/x.rb
                loaded.append(arg[2:])
                continue
            found = _bundle(arg, inline, valued, shell)
            if found == INLINE:
                return "", _sourced(shell, next(args, ""), loaded)
            if found == VALUE:
                next(args, None)
    return "", loaded


def _sourced(shell: bool, code: str, loaded: list[str]) -> list[str]:
    """``loaded`` and, for a shell, the files its inline code sources."""
    return loaded + SOURCED.findall(code) if shell else loaded


def _loads_of(interpreter: str) -> set:
    return next((o for start, o in LOADS.items() if interpreter.startswith(start)), set())


INLINE, VALUE = "inline", "value"


def _bundle(arg: str, inline: set, valued: set, shell: bool) -> str:
    """What a bundle of short options does (``sh -ec``, ``bash -xo pipefail``, ``python3 -uW
    ignore``): INLINE (one of them makes the code come inline: for a shell, c anywhere), VALUE
    (its last one takes the next argument as its value), or ''. As getopt reads a bundle, the
    letters after an option that takes a value are that value (``-Wignore``)."""
    for at, letter in enumerate(arg[1:], 1):
        option = arg[0] + letter
        if option in inline or (shell and letter == "c"):
            return INLINE
        if option in valued:
            return VALUE if at == len(arg) - 1 else ""
    return ""


DEEP_WHERE = "a directory too deep for the kernel's path walk (over about 500 levels)"


def too_deep(path: str) -> bool:
    """Whether a path (``run_from``'s, ``in_cwd``'s) is in a directory too deep for the
    kernel's walk: DEEP_PATH, or a relative name joined to it."""
    return path == DEEP_PATH or path.startswith(DEEP_PATH + "/")


def _field_expressions(cls: type) -> dict[str, str]:
    """Each security field as an expression on ``ev``: the attribute, or the default's repr
    where the class lacks it. A row class's (ProcessEvent: a named tuple) by index, which reads
    its plain tuples too (the detector's process rows)."""
    fields = getattr(cls, "_fields", ())
    return {
        name: f"ev[{fields.index(name)}]" if name in fields
        else f"ev.{name}" if hasattr(cls, name) else repr(default)
        for name, default in zip(SECURITY_FIELDS, SECURITY_DEFAULTS, strict=True)
    }  # fmt: skip


def security_reader(cls: type) -> SecurityReader:
    """A function giving an event's security fields (SECURITY_FIELDS order), the defaults
    standing in for the fields its class lacks.

    Built once per class as one tuple expression (a getattr that misses raises and catches an
    AttributeError, which costs more than the rest of the rules).
    """
    parts = _field_expressions(cls).values()
    return eval(f"lambda ev: ({', '.join(parts)})")  # names and reprs of our own constants


def suspect_test(cls: type, fileless: bool, privilege: bool) -> SuspectTest:
    """A function telling whether an exec of this class is fileless or runs as root for a user
    who is not root (what exec_fileless and privilege_gain look at): False for almost every
    exec, so the rules read the rest of the security context only when it is True. Built once
    per class, as ``security_reader`` is, with the same defaults."""
    f = _field_expressions(cls)
    tests = []
    if fileless:
        tests.append(f"{f['exe_deleted']} or {f['exe_memfd']}")
    if privilege:
        tests.append(f"({f['euid']} == {ROOT} and {f['uid']} != {ROOT} and {f['auid']} != {ROOT})")
    # (A conditional rather than bool(): no call, for every exec.)
    return eval(f"lambda ev: True if {' or '.join(tests) or 'False'} else False")  # our own


def _matcher(rule, *keys) -> re.Pattern | None:
    if rule is None:
        return None
    return glob_pattern([p for k in keys for p in rule.params.get(k, ())])


class ExecRules:
    def __init__(self, rules: dict, emit):
        self.emit = emit
        tmp = rules.get("exec_from_tmp")
        self.tmp_paths = tuple(tmp.params["paths"]) if tmp else ()
        self.fileless = "exec_fileless" in rules
        self.deep = EXEC_FROM_DEEP_PATH in rules
        self.privilege = "privilege_gain" in rules
        self._classes = [
            (SERVER_SHELL, _matcher(rules.get("shell_from_server"), "shells", "interpreters")),
            (NETWORK_TOOL, _matcher(rules.get("network_tool_in_container"), "programs")),
            (REVERSE_SHELL_PROGRAM, _matcher(rules.get("reverse_shell"), "shells")),
            (TERMINAL_SHELL, _matcher(rules.get("interactive_shell_in_container"), "shells")),
            (SCRIPT_RUNNER, _matcher(tmp, "interpreters")),
        ]
        server = rules.get("shell_from_server")
        self._local_only = _matcher(server, "local_only")
        self.tracks_servers = server is not None
        # Most programs match no list: one regex over every list says so in one match.
        self._any_class = glob_pattern(
            [p for rule in rules.values() for k in CLASS_LISTS for p in rule.params.get(k, ())]
        )
        self._class_of: dict[str, int] = {}
        self._readers: dict[type, SecurityReader] = {}
        self._suspects: dict[type, SuspectTest] = {}
        # Counts a repeat of (rule, ev, program) and says so, before a description is made
        # (the detector's; by default nothing is a repeat until emit says so).
        self.repeat: Callable[..., bool] = lambda rule_id, ev, program, parent_key=None: False

    def program_class(self, program: str) -> int:
        found = self._class_of.get(program)
        if found is None:
            if len(self._class_of) >= PROGRAM_CACHE_MAX:
                self._class_of.clear()
            found = 0
            if self._any_class is not None and self._any_class.match(program):
                for bit, pattern in self._classes:
                    if pattern is not None and pattern.match(program):
                        found |= bit
            self._class_of[program] = found
        return found

    def name_bits(self, ev, program: str) -> int:
        """What an exec's names and program decide: FROM_TMP (the file run is under a watched
        directory: ``run_from``), FROM_DEEP (it is too deep to tell) and the program's classes
        (0 for almost every exec: no rule looks at it by name). The classes of the file the
        kernel ran count too: a name is the runner's to choose (a symlink /tmp/x to bash, an
        fd, argv[0] of an fd), the file is not."""
        bits = self._class_of.get(program)
        if bits is None:
            bits = self.program_class(program)
        exe = exe_name(ev)
        if exe and exe != program:
            bits |= self.program_class(exe)
        elif not exe and is_multi_call(ev):  # (not kept per name by the detector: see there)
            bits |= self.program_class(applet_of(getattr(ev, "argv", ()))[0])
        by_loader = loaded_program(ev, exe or program)
        if by_loader:
            bits |= self.program_class(by_loader) & ~SCRIPT_RUNNER  # its place: _script_place
        return bits | self.place(run_from(ev))

    def place(self, path: str) -> int:
        """Where a file is, as the rules judge it: FROM_TMP (under a watched directory),
        FROM_DEEP (too deep to tell), or 0."""
        if self.tmp_paths and path.startswith(self.tmp_paths):
            return FROM_TMP
        if self.deep and too_deep(path):
            return FROM_DEEP
        return 0

    def suspect(self, cls: type) -> SuspectTest:
        found = self._suspects.get(cls)
        if found is None:
            found = self._suspects[cls] = suspect_test(cls, self.fileless, self.privilege)
        return found

    def network_facing(self, addr: str) -> bool:
        """Whether listening on (or accepting from) addr makes a process network-facing: not
        when only this host can reach it (the rule's local_only addresses)."""
        return self._local_only is None or not self._local_only.match(addr)

    def reader(self, cls: type) -> SecurityReader:
        found = self._readers.get(cls)
        if found is None:
            found = self._readers[cls] = security_reader(cls)
        return found

    def on_exec(self, ev, program: str, serving: bool, bits: int | None = None) -> None:
        """The rules decided at exec. ``bits``: the exec's ``name_bits`` (the detector keeps
        them per file name); the detector calls this only when they are set or the exec is
        ``suspect``, so the common exec costs neither this call nor a read of its context."""
        emit, filename, cls = self.emit, ev.filename, ev.__class__
        if bits is None:
            bits = self.name_bits(ev, program)
        if bits & FROM_TMP and not self.repeat(EXEC_FROM_TMP, ev, program, ev.parent_key):
            where = run_from(ev)
            which = f", which is {where}" if where != filename else ""
            emit(EXEC_FROM_TMP, ev, program,
                 f"{filename} executed{which} (from a temporary directory)")  # fmt: skip
        if bits & FROM_DEEP and not self.repeat(EXEC_FROM_DEEP_PATH, ev, program, ev.parent_key):
            emit(EXEC_FROM_DEEP_PATH, ev, program, f"{filename} executed from {DEEP_WHERE}")
        suspect = self._suspects.get(cls) or self.suspect(cls)
        if suspect(ev):
            uid, euid, auid, _, _, _, deleted, memfd = self.reader(cls)(ev)
            if self.fileless and (deleted or memfd):
                what = "a memfd" if memfd else "a deleted file"
                emit("exec_fileless", ev, program, f"{filename} executed from {what}")
            if self.privilege and euid == ROOT and uid != ROOT and auid != ROOT:
                emit(
                    "privilege_gain", ev, program,
                    f"{filename} runs as root (euid 0) for uid {uid}, login uid "
                    f"{_user(auid)}: setuid binary",
                )  # fmt: skip
        if bits & SCRIPT_RUNNER and not bits & WHERE:
            runner = program if self.program_class(program) & SCRIPT_RUNNER else exe_name(ev)
            self._script_place(ev, runner or program)
        kind = bits & ~WHERE
        if not kind:
            return
        stdin, stdout, tty = "", "", ""
        if kind & (REVERSE_SHELL_PROGRAM | TERMINAL_SHELL):
            _, _, _, tty, stdin, stdout, _, _ = self.reader(cls)(ev)
        container = ev.container_id
        if kind & NETWORK_TOOL and container:
            emit(
                "network_tool_in_container",
                ev,
                program,
                f"{program} ran in container {container[:12]}",
            )
        if kind & SERVER_SHELL and serving:
            emit(
                "shell_from_server",
                ev,
                program,
                f"{program} started by a network-facing server process (parent {ev.parent_key})",
            )
        if kind & REVERSE_SHELL_PROGRAM and "socket" in (stdin, stdout):
            emit(
                "reverse_shell",
                ev,
                program,
                f"shell {program} with stdin {stdin or '?'}, stdout {stdout or '?'} (a socket)",
            )
        if kind & TERMINAL_SHELL and container and tty:
            emit(
                "interactive_shell_in_container",
                ev,
                program,
                f"shell {program} on terminal {tty} in container {container[:12]}",
            )

    def _script_place(self, ev, interpreter: str) -> None:
        """exec_from_tmp (or exec_from_deep_path) for a script given to an interpreter
        (``sh /tmp/x.sh``; ``sh ./x.sh`` in a directory too deep to read), named by the script
        as a script run by its own path is (its repeats are told apart by it)."""
        argv: Sequence[str] = getattr(ev, "argv", ())
        if is_multi_call(ev):  # busybox sh /tmp/x: its applet's, if one of the list
            interpreter, argv = applet_of(argv)
            if not self.program_class(interpreter) & SCRIPT_RUNNER:
                return
        operand, loaded = read_arguments(interpreter, argv)
        cwd = getattr(ev, "cwd", "")
        for name, verb in [(f, "loaded") for f in loaded] + [(operand, "ran the script")]:
            if not name:
                continue
            script = in_cwd(name, cwd)
            where = self.place(script)
            if where == FROM_TMP:
                rule, what = EXEC_FROM_TMP, f"{script} (from a temporary directory)"
            elif where == FROM_DEEP:
                rule, what = EXEC_FROM_DEEP_PATH, f"{name} from {DEEP_WHERE}"
            else:
                continue
            program = script.rpartition("/")[2] or name
            if not self.repeat(rule, ev, program, ev.parent_key):
                self.emit(rule, ev, program, f"{interpreter} {verb} {what}")
            return

    def on_cred_change(self, ev, program: str) -> None:
        if not self.privilege:
            return
        uid, euid, auid = self.reader(ev.__class__)(ev)[:3]
        prev_euid = getattr(ev, "prev_euid", None)
        if euid == ROOT and prev_euid not in (None, ROOT) and auid != ROOT:
            self.emit(
                "privilege_gain", ev, program,
                f"{program} changed euid {prev_euid} -> 0 ({ev.outcome or 'credential change'}), "
                f"login uid {_user(auid)}",
            )  # fmt: skip


def _user(auid: int) -> str:
    return "unset" if auid == AUID_UNSET else str(auid)
