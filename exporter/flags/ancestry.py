"""What the detector holds of each live process: its parent, its program, whether it serves.

One tuple per process key, from fork, exec and the start-up scan, dropped at exit. Bounded:
past ``max_processes`` the oldest entry is evicted (and counted), so lost exit events or a
fork bomb cannot grow it without limit. Only processes seen since the exporter started (or
scanned at start) are known; a rule that needs an ancestor that is not known does not fire.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

# Final: each index is a literal, so mypy knows the type of the tuple field it selects.
PARENT: Final = 0
PROGRAM: Final = 1
SERVER: Final = 2
NOT_KNOWN = ("", "", False)
ANCESTRY_DEPTH_MAX = 64  # a walk up the chain stops here (and at a loop of reused keys)


# An exec through a file descriptor (fexecve, a memfd): the path names only the fd's number.
FD_PATH = re.compile(r"/(?:proc/(?:self|thread-self|\d+)|dev)/fd/\d+\Z")


def program_of(filename: str, comm: str = "", argv: Sequence[str] = ()) -> str:
    """The program's name: the executed file's base name, else the kernel's command name.

    Executed through an fd, the file's name is the fd's number, which two different programs
    share (and the repeats of a rule are told apart by program): the command name then, which
    the kernel takes from the file (a memfd's is the fd's number too: then argv[0]'s base)."""
    if filename.startswith(("/proc/", "/dev/fd/")) and FD_PATH.match(filename):
        if comm and not comm.isdigit():
            return comm
        return (argv[0].rpartition("/")[2] if argv else "") or comm
    return filename.rpartition("/")[2] or comm


class Ancestry:
    def __init__(self, max_processes: int):
        self.max_processes = max_processes
        self.procs: dict[str, tuple[str, str, bool]] = {}
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.procs)

    def _put(self, key: str, entry: tuple[str, str, bool]) -> None:
        if len(self.procs) >= self.max_processes:
            self.make_room(key)
        self.procs[key] = entry

    def make_room(self, key: str) -> None:
        """Called when full, before key is put: evicts the oldest process unless key is held."""
        if key not in self.procs:
            # Insertion order: the oldest process still held goes first.
            del self.procs[next(iter(self.procs))]
            self.evictions += 1

    # fork() and exec() run for every process: _put() is inlined in them (and fork() and exit()
    # in Detector.observe()).
    def fork(self, key: str, parent_key: str) -> None:
        """A child starts as its parent: same program, and it holds the parent's sockets."""
        procs = self.procs
        parent = procs.get(parent_key, NOT_KNOWN)
        if len(procs) >= self.max_processes:
            self.make_room(key)
        procs[key] = (parent_key, parent[PROGRAM], parent[SERVER])

    def exec(self, key: str, parent_key: str, program: str) -> bool:
        """Records the new program; True when the process or its parent was serving."""
        procs = self.procs
        own = procs.get(key)
        serving = (own is not None and own[SERVER]) or procs.get(parent_key, NOT_KNOWN)[SERVER]
        if own is None and len(procs) >= self.max_processes:
            self.make_room(key)
        # A new image: it serves again only once it listens or accepts itself.
        procs[key] = (parent_key, program, False)
        return serving

    def known(self, key: str, parent_key: str, program: str) -> None:
        """A process found running at start-up (scan)."""
        self._put(key, (parent_key, program, self.procs.get(key, NOT_KNOWN)[SERVER]))

    def serving(self, key: str) -> None:
        """The process listens or accepted a connection: it is network-facing."""
        entry = self.procs.get(key)
        if entry is None:
            self._put(key, ("", "", True))
        elif not entry[SERVER]:
            self.procs[key] = (entry[PARENT], entry[PROGRAM], True)

    def exit(self, key: str) -> str:
        """Forgets the process; returns its program ('' if it was not known)."""
        entry = self.procs.pop(key, None)
        return entry[PROGRAM] if entry else ""

    def parent(self, key: str) -> str:
        return self.procs.get(key, NOT_KNOWN)[PARENT]

    def program(self, key: str) -> str:
        return self.procs.get(key, NOT_KNOWN)[PROGRAM]

    def ancestor_programs(self, parent_key: str) -> Iterator[str]:
        """The programs of a process's known ancestors, parent first."""
        seen: set[str] = set()
        key = parent_key
        while key and key not in seen and len(seen) < ANCESTRY_DEPTH_MAX:
            seen.add(key)
            entry = self.procs.get(key)
            if entry is None:
                return
            yield entry[PROGRAM]
            key = entry[PARENT]
