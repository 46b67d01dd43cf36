"""What every probe shares: loading its BPF program with BTF offsets, draining its ring buffer.

A probe subclass names its C file, the kernel struct offsets it needs and its compile-time
constants, and implements ``decode(raw: bytes)`` returning an event (or None), or
``decode_batch(records)`` where a batch can share work. The runner calls ``drain()`` on a
timer: the BPF side submits without waking anyone, so a burst costs one wake-up per drain
instead of one per event.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from exporter import ringbuf
from exporter.btf import offset_defines
from schema.events import blank
from schema.pipeline_stats import PipelineStats

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"

log = logging.getLogger("groundtruth.exporter")
# A fault that repeats (with every batch, every sweep) logs its traceback once a minute at most.
FAULT_LOG_SECONDS = 60.0

# task_struct members read by task.h.
TASK_OFFSETS = {
    "TASK_GROUP_LEADER": ("task_struct", "group_leader"),
    "TASK_START_BOOTTIME": ("task_struct", "start_boottime"),
    "TASK_REAL_PARENT": ("task_struct", "real_parent"),
    "TASK_TGID": ("task_struct", "tgid"),
    "TASK_PID": ("task_struct", "pid"),
    "TASK_EXIT_CODE": ("task_struct", "exit_code"),
}


class BootClock:
    """Converts the kernel's boot clock (bpf_ktime_get_boot_ns) to wall-clock ns."""

    def __init__(self):
        self.refresh()

    def refresh(self) -> None:
        # Re-read now and then: NTP steps the wall clock, the boot clock does not move.
        self.offset_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def wall_ns(self, boot_ns: int) -> int:
        return boot_ns + self.offset_ns


@dataclass
class ProbeContext:
    """What a probe needs from the exporter around it."""

    host: str
    stats: PipelineStats = field(default_factory=PipelineStats)
    clock: BootClock = field(default_factory=BootClock)
    ringbuf_pages: int = 1024  # 4 MiB per probe: a short command (fork, exec, exit) takes ~350 B
    netns_inum: int = 0  # record only this network namespace (exporter/netns.py); 0: all


class BpfProbe:
    name = "probe"
    source = "probe.c"
    offsets: dict[str, tuple[str, str]] = TASK_OFFSETS
    # Read the ring buffer's memory in batches (exporter.ringbuf) rather than through bcc's
    # per-event callback; False only to measure that callback (the benchmarks' floor).
    read_directly = True

    def __init__(self, ctx: ProbeContext):
        self.ctx = ctx
        self.bpf = None
        self._reader: ringbuf.RingBufferReader | None = None
        self._batch: list = []  # filled by _on_event when bcc consumes
        # Fields a failed self-test showed to be wrong: blanked rather than emitted.
        self.untrusted: set[str] = set()
        self._faults_logged: dict[str, float] = {}  # message: monotonic time last logged
        ctx.stats.declare_dropped("decode", [self.misfit_reason, self.decode_error_reason])

    @property
    def misfit_reason(self) -> str:
        """The drop reason of a record whose size is not its event struct's (stage decode)."""
        return f"{self.name}_record_size"

    @property
    def decode_error_reason(self) -> str:
        """The drop reason of records whose decoding raised (stage decode)."""
        return f"{self.name}_decode_error"

    def decoded(self, decode, records: list[bytes], nothing):
        """``decode(records)``, or ``nothing`` if it raises. A fault in our decoding (the
        kernel's records are checked for size before it) then loses that batch, counted as
        dropped and logged with its traceback, and the exporter goes on with the next one:
        stopping would lose everything after it."""
        try:
            return decode(records)
        except Exception:  # noqa: BLE001 - counted, and logged by log_fault
            self.ctx.stats.count_dropped("decode", self.decode_error_reason, len(records))
            self.log_fault("%s probe: decoding %d records failed", self.name, len(records))
            return nothing

    def log_fault(self, message: str, *args) -> None:
        """``log.exception(message, *args)`` from an ``except`` block, at most once a minute per
        message: a fault that repeats with every batch would flood the log."""
        now = time.monotonic()
        if now - self._faults_logged.get(message, -FAULT_LOG_SECONDS) >= FAULT_LOG_SECONDS:
            self._faults_logged[message] = now
            log.exception(message, *args)

    def count_misfits(self, n: int = 1) -> None:
        """Records that were not this probe's event structs: counted, never guessed at."""
        self.ctx.stats.count_dropped("decode", self.misfit_reason, n)

    def defines(self) -> dict[str, int]:
        """Compile-time constants (-DNAME=value) of this probe."""
        return {"RINGBUF_PAGES": self.ctx.ringbuf_pages}

    def load(self) -> None:
        """Compile, load and attach (bcc attaches TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE)."""
        from bcc import BPF

        cflags = [f"-I{BPF_DIR}", *offset_defines(self.offsets)]
        cflags += [f"-D{k}={v}" for k, v in self.defines().items()]
        self.bpf = BPF(src_file=str(BPF_DIR / self.source).encode(), cflags=cflags)
        events = self.bpf[b"events"]
        if self.read_directly and ringbuf.supported():
            self._reader = ringbuf.RingBufferReader(events.map_fd, events.max_entries)
        else:
            events.open_ring_buffer(self._on_event)

    def _on_event(self, _ctx, data, size) -> None:
        """bcc's per-event callback, where the ring buffer cannot be read directly."""
        self._batch += self.decoded(self.decode_batch, [ctypes.string_at(data, size)], [])

    def decode(self, raw: bytes):
        """One record's event, or None for a record that only updates the probe's state."""
        raise NotImplementedError

    def decode_batch(self, records: list[bytes]) -> list:
        """The events of a batch of records, in order (a probe may decode a batch at once)."""
        return [e for e in map(self.decode, records) if e is not None]

    def blank_untrusted(self, events: list) -> list:
        """The events with the untrusted fields each has emptied: emitted empty rather than
        wrong (copies: a ProcessEvent is a tuple)."""
        blanked = []
        for ev in events:
            cls = type(ev)
            names = self.untrusted & cls.__dataclass_fields__.keys()
            blanked.append(dataclasses.replace(ev, **{name: blank(cls, name) for name in names}))
        return blanked

    def drain(self) -> list:
        """Everything the kernel has queued, decoded."""
        if self._reader is not None:
            return self.decoded(self.decode_batch, self._reader.read(), [])
        self.bpf.ring_buffer_consume()
        batch, self._batch = self._batch, []
        return batch

    def ring_fill(self) -> float | None:
        """How full the ring buffer is (0 to 1): what the kernel queued and no drain has taken
        yet. None where bcc's consumer reads it, which cannot tell without consuming."""
        reader = self._reader
        return reader.pending_bytes() / (reader.mask + 1) if reader is not None else None

    def drain_columns(self) -> tuple[list, list]:
        """(events, ColumnBatches) of everything queued, as ``decode_columns`` gives them: a
        probe with a columnar hot path returns most of its rows as columns
        (``schema.column_batch``); by default, none."""
        if self._reader is None:  # bcc's consumer decoded them already, as event objects
            return self.drain(), []
        return self.decoded(self.decode_columns, self._reader.read(), ([], []))

    def decode_columns(self, records: list[bytes]) -> tuple[list, list]:
        """(events, ColumnBatches) of a batch of records; by default all as events."""
        return self.decode_batch(records), []

    def program_counters(self) -> dict[str, dict[str, int]]:
        """{program: the kernel's counters of it}, from its fdinfo: run_cnt and run_time_ns
        (kept while kernel.bpf_stats_enabled is 1), recursion_misses, ..."""
        found: dict[str, dict[str, int]] = {}
        if self.bpf is None:
            return found
        for name, fn in self.bpf.funcs.items():
            try:
                lines = Path(f"/proc/self/fdinfo/{fn.fd}").read_text().splitlines()
            except OSError:
                continue
            fields = (line.split(":", 1) for line in lines)
            found[name.decode()] = {k: int(v) for k, v in fields if v.strip().isdigit()}
        return found

    def drops_by_kind(self) -> dict[int, int]:
        """{event kind: events the kernel could not queue (ring buffer full)}, over all CPUs."""
        if self.bpf is None:
            return {}
        return {k.value: sum(v) for k, v in self.bpf[b"drops"].items() if sum(v)}

    def kernel_drops(self) -> dict[tuple[str, str], int]:
        """For groundtruth_events_dropped_total: stage kernel, reason <probe>_ringbuf_full;
        zero too, so that rate() and alert rules see the series from the start."""
        return {("kernel", f"{self.name}_ringbuf_full"): sum(self.drops_by_kind().values())}

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
