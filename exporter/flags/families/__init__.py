"""The rules' logic, one module per family. Each module declares the lists its rules take from
the rules file (``PARAMS``: rule id -> {key: "texts" | "ints"}, "texts?" where a rules file
may leave it out), and a class built from the
rulebook and the thresholds whose methods the detector calls on the events they need."""

from __future__ import annotations

from exporter.flags.families import connect_rules, exec_rules, exit_rules

FAMILY_PARAMS: dict[str, dict[str, str]] = {
    **exec_rules.PARAMS,
    **exit_rules.PARAMS,
    **connect_rules.PARAMS,
}
