"""Alerts received from Alertmanager's webhook, as rows of the ``received_alerts`` table.

``ReceivedAlert`` is declared like the exporter's events (``schema.events.col``), so the
store derives its DDL the same way. ``from_webhook`` turns one webhook payload (version "4")
into rows. Alertmanager redelivers notifications, so the event id is the alert's episode and
status (fingerprint, status, start): a redelivered alert has the id it had the first time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from schema.events import col


@dataclass(slots=True)
class ReceivedAlert:
    """One alert status change as Alertmanager delivered it."""

    # Kept for the retention period from when it *arrived*: an alert that has been firing
    # longer than the retention is still news when it is delivered (store/schema.py).
    RETAINED_BY: ClassVar[str] = "received_ns"

    event_id: str = col("String", "fingerprint:status:starts_at_ns; the same on redelivery.")
    time_ns: int = col("UInt64", "When the status took effect: startsAt, or endsAt if resolved.")
    host: str = col("String", "The alert's host label (or instance), or ''.")
    container: str = col("String", "The alert's container label, or ''.")
    fingerprint: str = col("String", "Alertmanager's fingerprint of the label set.")
    status: str = col("String", "firing or resolved.")
    alertname: str = col("String", "The alertname label.")
    severity: str = col("String", "The severity label, or ''.")
    labels: str = col("String", "All labels, a JSON object with sorted keys.")
    annotations: str = col("String", "All annotations, a JSON object with sorted keys.")
    starts_at_ns: int = col("UInt64", "startsAt, ns since the epoch.")
    ends_at_ns: int = col("UInt64", "endsAt, ns since the epoch; 0 when not set.")
    received_ns: int = col("UInt64", "When groundtruth received it, ns since the epoch.")
    receiver: str = col("String", "The Alertmanager receiver that sent it.")
    generator_url: str = col("String", "Link to the expression that fired.")


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_time_ns(text: str) -> int:
    """RFC 3339 with up to nanoseconds (Go's format) -> ns since the epoch; Go's zero time -> 0."""
    m = _RFC3339.match(text or "")
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    seconds, fraction, zone = m.groups()
    zone = "+00:00" if zone == "Z" else zone
    whole = datetime.fromisoformat(seconds + zone).astimezone(UTC)
    if whole.year < 1970:
        return 0
    return int(whole.timestamp()) * 10**9 + int((fraction or "0").ljust(9, "0"))


def from_webhook(payload: dict, received_ns: int) -> list[ReceivedAlert]:
    """Rows for every alert in one Alertmanager webhook payload."""
    rows = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        status = alert.get("status", payload.get("status", ""))
        starts = parse_time_ns(alert["startsAt"])
        ends = parse_time_ns(alert.get("endsAt", "0001-01-01T00:00:00Z"))
        fingerprint = alert.get("fingerprint", "")
        rows.append(
            ReceivedAlert(
                event_id=f"{fingerprint}:{status}:{starts}",
                time_ns=ends if status == "resolved" and ends else starts,
                host=labels.get("host", labels.get("instance", "")),
                container=labels.get("container", ""),
                fingerprint=fingerprint,
                status=status,
                alertname=labels.get("alertname", ""),
                severity=labels.get("severity", ""),
                labels=json.dumps(labels, sort_keys=True),
                annotations=json.dumps(alert.get("annotations", {}), sort_keys=True),
                starts_at_ns=starts,
                ends_at_ns=ends,
                received_ns=received_ns,
                receiver=payload.get("receiver", ""),
                generator_url=alert.get("generatorURL", ""),
            )
        )
    return rows
