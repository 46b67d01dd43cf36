"""Times on the command line: absolute, epoch and relative forms, with a timezone.

Accepted (``parse_time``):

- ``now``, ``now-1h``, ``now+5m``, and a bare duration ``15m`` meaning that long ago;
- ISO 8601 date-times: ``2026-11-26T14:05:00Z``, ``2026-11-26 14:05:00.123456789+01:00``; a
  date-time without an offset, a date alone or a time of day alone (``14:05``, today) is read
  in the display timezone (``--tz``, default the machine's);
- epoch seconds with an optional fraction (``1764165900.5``); 13, 16 or 19 digits are read as
  milliseconds, microseconds or nanoseconds, the lengths those units have today.

Durations are a sequence of number-unit pairs (``1h30m``) with units ``ns us ms s m h d w``.
Everything returns nanoseconds since the epoch, the store's unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incident.errors import IncidentError

NS = 1_000_000_000
UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
    "d": 86400 * NS,
    "w": 7 * 86400 * NS,
}
_DURATION = re.compile(r"(?:\d+(?:ns|us|ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+)(ns|us|ms|s|m|h|d|w)")
_NOW = re.compile(r"now(?:\s*([+-])\s*(\S+))?$")
_EPOCH = re.compile(r"(\d+)(?:\.(\d{1,9}))?$")
_ISO = re.compile(
    r"(\d{4}-\d\d-\d\d)"  # date
    r"(?:[T ](\d\d:\d\d(?::\d\d)?)(?:[.,](\d{1,9}))?)?"  # time, fraction up to ns
    r"\s*(Z|[+-]\d\d(?::?\d\d)?)?$",  # offset
    re.IGNORECASE,
)
_TIME_OF_DAY = re.compile(r"(\d\d?:\d\d(?::\d\d)?)(?:[.,](\d{1,9}))?\s*(Z|[+-]\d\d(?::?\d\d)?)?$")
# Epoch digits -> ns multiplier, by the number of digits each unit has in this era.
_EPOCH_SCALE = {13: 1_000_000, 16: 1_000, 19: 1}

FORMS = "ISO 8601 (2026-11-26T14:05:00Z), epoch seconds, or relative (15m, 2h, now-1h)"


class TimeError(IncidentError):
    pass


def parse_duration_ns(text: str) -> int:
    """``15m``, ``1h30m``, ``500ms`` -> nanoseconds (must be more than zero)."""
    compact = text.strip().lower().replace(" ", "")
    if not _DURATION.match(compact):
        raise TimeError(f"cannot read duration {text!r}: expected e.g. 30s, 15m, 2h, 1d, 1h30m")
    total = sum(int(n) * UNIT_NS[u] for n, u in _DURATION_PART.findall(compact))
    if total <= 0:
        raise TimeError(f"duration {text!r} is zero: give a length of time, e.g. 15m")
    return total


def get_zone(name: str | None) -> tzinfo:
    """A timezone by IANA name (``Europe/Berlin``), ``UTC``, or None for the machine's own."""
    if name is None or name == "local":
        return datetime.now().astimezone().tzinfo
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeError(
            f"unknown timezone {name!r}: use an IANA name like Europe/Berlin, or UTC"
        ) from None


def _offset(text: str | None, default: tzinfo) -> tzinfo:
    if text is None:
        return default
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _to_ns(local: datetime, fraction: str | None) -> int:
    whole = int(local.timestamp())
    return whole * NS + int((fraction or "0").ljust(9, "0"))


def parse_time(text: str, now_ns: int, zone: tzinfo = UTC) -> int:
    """One time from the command line -> ns since the epoch (see the module docstring)."""
    raw = text.strip()
    try:
        value = _parse(raw, now_ns, zone)
    except TimeError:
        raise
    except (ValueError, OverflowError) as e:
        raise TimeError(f"cannot read time {text!r}: {e}") from None
    if value is None:
        raise TimeError(f"cannot read time {text!r}: expected {FORMS}")
    if value < 0:
        raise TimeError(f"time {text!r} is before 1970")
    return value


def _parse(raw: str, now_ns: int, zone: tzinfo) -> int | None:
    lower = raw.lower()
    m = _NOW.match(lower)
    if m:
        sign, amount = m.groups()
        if sign is None:
            return now_ns
        delta = parse_duration_ns(amount)
        return now_ns - delta if sign == "-" else now_ns + delta
    if _DURATION.match(lower):
        return now_ns - parse_duration_ns(lower)
    m = _EPOCH.match(raw)
    if m:
        digits, fraction = m.groups()
        scale = _EPOCH_SCALE.get(len(digits)) if fraction is None else None
        if scale:
            return int(digits) * scale
        if len(digits) > 11:
            raise TimeError(
                f"cannot read epoch {raw!r}: use seconds (10 digits), or 13/16/19 digits for "
                "milliseconds/microseconds/nanoseconds"
            )
        return int(digits) * NS + int((fraction or "0").ljust(9, "0"))
    m = _ISO.match(raw)
    if m:
        day, clock, fraction, offset = m.groups()
        at = time.fromisoformat(clock) if clock else time(0)
        when = datetime.combine(date.fromisoformat(day), at, tzinfo=_offset(offset, zone))
        return _to_ns(when, fraction)
    m = _TIME_OF_DAY.match(raw)
    if m:
        clock, fraction, offset = m.groups()
        tz = _offset(offset, zone)
        today = datetime.fromtimestamp(now_ns / NS, tz).date()
        at = time.fromisoformat(clock if clock.index(":") == 2 else "0" + clock)
        return _to_ns(datetime.combine(today, at, tzinfo=tz), fraction)
    return None


@dataclass(frozen=True)
class Window:
    """A half-open time range [start_ns, end_ns) in ns since the epoch."""

    start_ns: int
    end_ns: int

    def describe(self, zone: tzinfo) -> str:
        return f"{format_ns(self.start_ns, zone)} to {format_ns(self.end_ns, zone)}"


def make_window(
    since: str | None,
    start: str | None,
    end: str | None,
    now_ns: int,
    zone: tzinfo,
    default_since: str | None = "15m",
) -> Window:
    """The window of ``--since D`` or ``--from T [--to T]`` (to defaults to now)."""
    if since and (start or end):
        raise TimeError("give either --since or --from/--to, not both")
    if since:
        return Window(now_ns - parse_duration_ns(since), now_ns)
    if not start:
        if end:
            raise TimeError("--to needs --from")
        if default_since is None:
            raise TimeError("give the window: --from TIME --to TIME (or --since 15m)")
        return Window(now_ns - parse_duration_ns(default_since), now_ns)
    lo = parse_time(start, now_ns, zone)
    hi = parse_time(end, now_ns, zone) if end else now_ns
    if hi <= lo:
        raise TimeError(
            f"the window is empty: --from {start!r} is not before --to {end or 'now'!r}"
        )
    return Window(lo, hi)


def format_ns(ns: int, zone: tzinfo, precision: str = "milliseconds") -> str:
    """ISO 8601 in the display timezone, e.g. ``2026-11-26T14:05:00.123+00:00``."""
    when = datetime.fromtimestamp(ns // NS, zone).replace(microsecond=(ns % NS) // 1000)
    return when.isoformat(timespec=precision)
