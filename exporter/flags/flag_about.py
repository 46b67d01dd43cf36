"""One place that builds a flag from the event that decided it (the rules' and the policies')."""

from __future__ import annotations

from schema.events import FlagEvent


def flag_about(ev, **fields) -> FlagEvent:
    """A flag about the process (and connection) of the event that decided it: the event's
    identity fields, and ``fields`` for the rest."""
    return FlagEvent(
        host=ev.host,
        process_key=ev.process_key,
        pid=ev.pid,
        comm=ev.comm,
        uid=getattr(ev, "uid", 0),
        container_id=ev.container_id,
        pod_uid=ev.pod_uid,
        event_time_ns=ev.time_ns,
        trigger_event_id=ev.event_id,
        **fields,
    )
