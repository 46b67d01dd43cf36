"""Recorded events for the graphapi tests: two hosts, a process tree, and both ends of connections.

Host a: init (scanned, before the window) -> sh -> curl, which connects to host b's nginx and to
a public address; sh also runs five `true` (collapsed into one node) and one failing `false`;
wget connects to nginx too, but host b saw that connection accepted ten minutes later (no match);
an entrypoint script execs its app (one process, two programs).
Host b: nginx (scanned, listening on :80) accepts curl's connection and forks a worker.
"""

from __future__ import annotations

import itertools
import time

from schema.events import ConnectionEvent, ListenEvent, ProcessEvent, process_key

S = 10**9
T0 = (time.time_ns() // S - 1800) * S  # half an hour ago, whole seconds
WINDOW = {"from": str((T0 - 60 * S) // 10**6), "to": str((T0 + 1200 * S) // 10**6)}
_ids = itertools.count()

A, B = "host-a", "host-b"
A_ADDR, B_ADDR, PUBLIC = "10.0.0.1", "10.0.0.2", "93.184.216.34"


def key(host: str, pid: int) -> str:
    return process_key(host, pid, pid * 10)  # start ticks: pid * 10, distinct and checkable


def proc(kind: str, host: str, pid: int, ppid: int, t: int, comm: str, **kw) -> ProcessEvent:
    return ProcessEvent(
        event_id=f"p{next(_ids)}",
        kind=kind,
        time_ns=t,
        host=host,
        pid=pid,
        ppid=ppid,
        process_key=key(host, pid),
        parent_key=key(host, ppid) if ppid else "",
        start_time_ns=kw.pop("start", t),
        uid=kw.pop("uid", 1000),
        comm=comm,
        source="scan" if kind == "scan" else "ebpf",
        **kw,
    )


def spawn(host: str, pid: int, ppid: int, t: int, comm: str, argv: list, end=None, **exit_kw):
    """fork, exec and (when ``end`` is given) exit of one process."""
    events = [
        proc("fork", host, pid, ppid, t, comm, start=t),
        proc(
            "exec",
            host,
            pid,
            ppid,
            t + 1000,
            comm,
            start=t,
            filename=argv[0],
            argv=argv,
            exe_path=argv[0] if argv[0].startswith("/") else f"/usr/bin/{comm}",
            cwd="/srv/app",
        ),
    ]
    if end is not None:
        exit_kw.setdefault("exit_code", 0)
        exit_kw.setdefault("outcome", "ok" if exit_kw["exit_code"] == 0 else "error")
        events.append(proc("exit", host, pid, ppid, end, comm, start=t, **exit_kw))
    return events


def conn(host, pid, direction, local, remote, t, cid, kinds=("connect", "close"), comm=""):
    (laddr, lport), (raddr, rport) = local, remote
    return [
        ConnectionEvent(
            event_id=f"c{next(_ids)}",
            kind=kind,
            time_ns=t + i * S,
            host=host,
            connection_id=cid,
            pid=pid,
            process_key=key(host, pid),
            comm=comm,
            direction=direction,
            family="ipv4",
            local_addr=laddr,
            local_port=lport,
            remote_addr=raddr,
            remote_port=rport,
            outcome="ok",
            open_time_ns=t,
            bytes_sent=100 * (i + 1),
            bytes_received=10 * (i + 1),
        )
        for i, kind in enumerate(kinds)
    ]


def events() -> list:
    ev = [proc("scan", A, 1, 0, T0 - 3600 * S, "systemd", start=T0 - 7200 * S, uid=0)]
    ev += spawn(A, 100, 1, T0 + 1 * S, "sh", ["/bin/sh", "-c", "curl"])
    ev += spawn(A, 101, 100, T0 + 2 * S, "curl", ["curl", "http://10.0.0.2/"], end=T0 + 9 * S)
    for i in range(5):
        ev += spawn(A, 110 + i, 100, T0 + (20 + i) * S, "true", ["true"], end=T0 + (21 + i) * S)
    ev += spawn(A, 120, 100, T0 + 30 * S, "false", ["false"], end=T0 + 31 * S, exit_code=1)
    ev += spawn(A, 130, 100, T0 + 40 * S, "wget", ["wget", "http://10.0.0.2/"])
    # An entrypoint script that execs its application: one pid, two programs.
    ev += spawn(A, 140, 100, T0 + 50 * S, "entrypoint.sh", ["/entrypoint.sh", "app"])
    ev.append(proc("exec", A, 140, 100, T0 + 51 * S, "app", start=T0 + 50 * S, argv=["app"]))
    ev += conn(A, 101, "outbound", (A_ADDR, 40000), (B_ADDR, 80), T0 + 3 * S, "a1", comm="curl")
    ev += conn(A, 101, "outbound", (A_ADDR, 40002), (PUBLIC, 443), T0 + 4 * S, "a2", comm="curl")
    ev += conn(A, 130, "outbound", (A_ADDR, 40001), (B_ADDR, 80), T0 + 41 * S, "a3", comm="wget")

    ev.append(proc("scan", B, 200, 1, T0 - 3600 * S, "nginx", start=T0 - 7200 * S, uid=0,
                   exe_path="/usr/sbin/nginx"))  # fmt: skip
    ev.append(
        ListenEvent(
            event_id=f"l{next(_ids)}", kind="scan", time_ns=T0 - 3600 * S, host=B, pid=200,
            process_key=key(B, 200), comm="nginx", family="ipv4", local_addr="0.0.0.0",
            local_port=80, source="scan",
        )
    )  # fmt: skip
    ev += conn(B, 200, "inbound", (B_ADDR, 80), (A_ADDR, 40000), T0 + 3 * S + 10**6, "b1",
               kinds=("accept", "close"), comm="nginx")  # fmt: skip
    ev += conn(B, 200, "inbound", (B_ADDR, 80), (A_ADDR, 40001), T0 + 641 * S, "b2",
               kinds=("accept", "close"), comm="nginx")  # fmt: skip
    ev += spawn(B, 201, 200, T0 + 4 * S, "nginx", ["nginx: worker"], end=T0 + 5 * S)
    return ev


def alert_payload(fingerprint: str = "a1b2c3d4e5f60718", host: str = B, labels=None) -> dict:
    """A webhook payload (version 4) with one firing alert on ``host`` within the window
    (``labels``: the alert's labels, by default a crash loop's on ``host``)."""
    labels = labels or {
        "alertname": "GroundtruthProcessCrashLoop", "instance": host, "severity": "warning"
    }  # fmt: skip
    starts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((T0 + 6 * S) // S)) + ".5Z"
    return {
        "version": "4",
        "groupKey": '{}:{instance="' + host + '"}',
        "status": "firing",
        "receiver": "graphapi",
        "groupLabels": {"instance": host},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "nginx workers keep exiting"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }
