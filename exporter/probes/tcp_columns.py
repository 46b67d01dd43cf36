"""The TCP probe's hot path: a drain of fixed-size ``struct tcp_event`` records decoded with numpy
straight into columns (``schema.column_batch``), no object per event.

Close and connect-failed records (nearly every record on a busy host) become a ColumnBatch of
ConnectionEvent columns: numbers as numpy arrays, repeated text (owners, addresses, outcomes)
looked up once per distinct value in the batch. Everything else (listens, a kind this decoder
does not know, a socket older than the probe matched to the start-up scan) goes through
``TcpProbe.decode_batch``, which stays the one definition of every field: the tests hold the two
equal, record by record.
"""

from __future__ import annotations

import numpy as np

from schema.column_batch import Coded, ColumnBatch
from schema.events import ConnectionEvent, blank

from .tcp import EV_CLOSE, EV_CONNECT_FAILED, EVENT, F_UNTRACKED, KIND_NAMES, addresses, end_labels

# struct tcp_event (bpf/tcp.h) as numpy reads it, fields named by their C member designators
# (tests/test_kernel_abi.py checks every offset and size against the compiled header).
RECORD = np.dtype(
    {
        "names": [
            "ts_ns", "conn_id", "open_ns", "established_ns", "bytes_sent", "bytes_received",
            "owner.start_ns", "owner.cgroup_id", "owner.pid", "owner.comm", "addrs.saddr",
            "addrs.daddr", "addrs.sport", "addrs.dport", "addrs.family", "kind", "flags",
            "retransmits", "error",
        ],
        "formats": [
            "<u8", "<u8", "<u8", "<u8", "<u8", "<u8", "<u8", "<u8", "<u4", "S16", "V16", "V16",
            "<u2", "<u2", "<u2", "<u4", "<u4", "<u4", "<i4",
        ],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 88, 104, 120, 122, 124, 128, 132, 136,
                    140],
        "itemsize": EVENT.size,
    }
)  # fmt: skip
# Both addresses (saddr, daddr) as four 64-bit words: what their text forms depend on, with the
# family.
WORDS = ["w0", "w1", "w2", "w3"]
ADDR_WORDS = np.dtype(
    {"names": WORDS, "formats": ["<u8"] * 4, "offsets": [88, 96, 104, 112],
     "itemsize": EVENT.size}
)  # fmt: skip


def _distinct(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the first row of each distinct key, each row's distinct key number), for keys
    given as integer columns (a sort of integers: structured keys sort several times slower)."""
    order = np.lexsort(keys)
    new = np.zeros(len(order), bool)
    new[0] = True
    for key in keys:
        ordered = key[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    group = np.cumsum(new) - 1
    inverse = np.empty(len(order), np.int64)
    inverse[order] = group
    return order[new], inverse


def decode_columns(probe, records: list[bytes]) -> tuple[list, ColumnBatch | None]:
    """(events decoded one by one, the close and connect-failed rows as columns) of a drain."""
    size = EVENT.size
    fitting = (
        records if set(map(len, records)) <= {size} else [r for r in records if len(r) == size]
    )
    if len(fitting) < len(records):  # not this probe's struct tcp_event: counted, never guessed
        probe.count_misfits(len(records) - len(fitting))
    if not fitting:
        return [], None
    rec = np.frombuffer(b"".join(fitting), dtype=RECORD)
    kind, flags = rec["kind"], rec["flags"]
    hot = ((kind == EV_CLOSE) | (kind == EV_CONNECT_FAILED)) & (flags & F_UNTRACKED == 0)
    others = np.flatnonzero(~hot).tolist()
    events = probe.decode_batch([fitting[i] for i in others]) if others else []
    if len(others) == len(fitting):
        return events, None
    return events, ColumnBatch(ConnectionEvent, _columns(probe, rec[hot] if others else rec))


def _columns(probe, rec: np.ndarray) -> dict:
    n = len(rec)
    offset = np.uint64(probe.ctx.clock.offset_ns)
    run_id, host = probe._run_id, probe.ctx.host
    ts, open_ns, est = rec["ts_ns"], rec["open_ns"], rec["established_ns"]
    kind, pid, cgroup_id, err = rec["kind"], rec["owner.pid"], rec["owner.cgroup_id"], rec["error"]

    # Owners: one lookup per distinct process in the batch (the probe's cache behind it).
    start_ns, flags = rec["owner.start_ns"], rec["flags"]
    first, owner_of = _distinct(pid, cgroup_id, start_ns)
    owners = [
        probe.owner(int(pid[i]), int(start_ns[i]), int(cgroup_id[i]), bytes(rec["owner.comm"][i]))
        for i in first.tolist()
    ]
    # Addresses and end labels: one text form per distinct value.
    words = rec.view(ADDR_WORDS)
    both = [words[w] for w in WORDS]
    family = rec["addrs.family"]
    first, addr_of = _distinct(*both, family)
    addrs = [
        addresses(int(family[i]), np.array([w[i] for w in both], "<u8").tobytes())
        for i in first.tolist()
    ]
    first, end_of = _distinct(kind, flags, err)
    ends = [end_labels(int(kind[i]), int(flags[i]), int(err[i])) for i in first.tolist()]
    kinds = [KIND_NAMES.get(int(kind[i])) or str(int(kind[i])) for i in first.tolist()]

    seq = probe.take_event_ids(n)
    failed = kind == EV_CONNECT_FAILED
    zero = np.zeros(n, np.uint64)
    cols = {
        "event_id": [f"{run_id}-{i}" for i in range(seq, seq + n)],
        "kind": Coded(end_of, kinds),
        "time_ns": ts + offset,
        "host": Coded(np.zeros(n, np.int64), [host]),
        "connection_id": [f"{run_id}-{c:x}" if c else "" for c in rec["conn_id"].tolist()],
        "pid": pid.astype(np.uint32),
        "process_key": Coded(owner_of, [o[0] for o in owners]),
        "comm": Coded(owner_of, [o[1] for o in owners]),
        "cgroup_id": cgroup_id.copy(),
        "container_id": Coded(owner_of, [o[2] for o in owners]),
        "pod_uid": Coded(owner_of, [o[3] for o in owners]),
        "direction": Coded(end_of, [e[0] for e in ends]),
        "family": Coded(addr_of, [a[0] for a in addrs]),
        "local_addr": Coded(addr_of, [a[1] for a in addrs]),
        "local_port": rec["addrs.sport"].astype(np.uint16),
        "remote_addr": Coded(addr_of, [a[2] for a in addrs]),
        "remote_port": rec["addrs.dport"].astype(np.uint16),
        "outcome": Coded(end_of, [e[1] for e in ends]),
        "error": Coded(end_of, [e[2] for e in ends]),
        "open_time_ns": np.where(open_ns != 0, open_ns + offset, zero),
        # connect_failed: how long until it failed; else the handshake, when both ends are seen.
        "establish_ns": np.where(
            open_ns == 0,
            zero,
            np.where(failed, ts - open_ns, np.where(est != 0, est - open_ns, zero)),
        ),
        "duration_ns": np.where((kind == EV_CLOSE) & (est != 0), ts - est, zero),
        "bytes_sent": rec["bytes_sent"].copy(),
        "bytes_received": rec["bytes_received"].copy(),
        "retransmits": rec["retransmits"].copy(),
        "resets": np.array([e[3] for e in ends], np.uint8)[end_of],
        "closed_by": Coded(end_of, [e[4] for e in ends]),
        "source": Coded(np.zeros(n, np.int64), ["ebpf"]),
        "workload": Coded(owner_of, [o[4] for o in owners]),
    }
    for name in probe.untrusted & cols.keys():  # emitted empty rather than wrong
        value = blank(ConnectionEvent, name)
        cols[name] = Coded(np.zeros(n, np.int64), [value]) if isinstance(value, str) else zero
    return cols
