"""The live processes the exporter knows: pid -> identity and container.

Filled by the start-up scan and by fork/exec events, emptied by exits. It lets a child inherit
its parent's container when the kernel can no longer be asked (the child already exited), and
lets an OOM kill name the process key of its victim. Kept small: one tuple per process.
"""

from __future__ import annotations

from exporter.containers import NO_CONTAINER, Container


class ProcessTable:
    def __init__(self):
        # pid -> (process key, container); the process probe's decode loop reads and writes it
        # directly (as add and remove do), a call less per event.
        self.by_pid: dict[int, tuple[str, Container]] = {}

    def __len__(self) -> int:
        return len(self.by_pid)

    def add(self, pid: int, key: str, container: Container) -> None:
        self.by_pid[pid] = (key, container)

    def remove(self, pid: int, key: str) -> None:
        """Forget a process, unless the pid was already reused by a newer one."""
        entry = self.by_pid.get(pid)
        if entry is not None and entry[0] == key:
            del self.by_pid[pid]

    def key(self, pid: int) -> str:
        entry = self.by_pid.get(pid)
        return entry[0] if entry else ""

    def container(self, pid: int) -> Container:
        entry = self.by_pid.get(pid)
        return entry[1] if entry else NO_CONTAINER
