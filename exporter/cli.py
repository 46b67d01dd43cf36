"""Subcommands of the exporter: ``groundtruth run``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("run", help="run the eBPF exporter (metrics and raw events)")
    p.set_defaults(func=lambda args: 0)
