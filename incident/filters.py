"""Timeline filters from the command line: --user and --remote, checked before any query."""

from __future__ import annotations

import ipaddress
import pwd
import re

from incident.errors import IncidentError

_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?$")


def parse_user(text: str | None) -> int | None:
    """A uid, or a user name looked up on this machine (the store records uids)."""
    if text is None or text == "":
        return None
    if text.isdigit():
        uid = int(text)
        if uid >= 2**32:
            raise IncidentError(f"uid {text} is out of range")
        return uid
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise IncidentError(
            f"unknown user {text!r} on this machine: give the numeric uid instead"
        ) from None


def parse_remote(text: str | None) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT`` or ``:PORT`` -> (address, port); 0 is any port."""
    if not text:
        return "", 0
    m = _BRACKETED.match(text)
    if m:
        addr, port = m.group(1), m.group(2) or "0"
    elif text.count(":") == 1:
        addr, port = text.split(":")
        port = port or "0"
    else:
        addr, port = text, "0"  # IPv4 without a port, or a bare IPv6 address
    if not port.isdigit() or int(port) > 65535:
        raise IncidentError(f"--remote {text!r}: port must be a number up to 65535")
    if addr:
        try:
            addr = str(ipaddress.ip_address(addr))
        except ValueError:
            raise IncidentError(
                f"--remote {text!r}: not an IP address (ADDR, ADDR:PORT, [V6]:PORT or :PORT)"
            ) from None
    if not addr and port == "0":
        raise IncidentError(f"--remote {text!r}: give an address, a port, or both")
    return addr, int(port)
