"""``groundtruth``: the console script. Each part of the project registers its subcommands.

A part adds itself by providing ``register(subparsers)`` in a module listed in ``PARTS``; the
function adds its subparsers and sets ``func`` (called with the parsed args, returns an exit
status) on each.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that register subcommands, in the order --help lists them.
PARTS = [
    "groundtruth.up",
    "groundtruth.run",
    "exporter.flags.cli",
    "store.cli",
    "graphapi.cli",
    "incident.cli",
    "baseline.cli",
    "dashboards.cli",
    "alerts.cli",
    "groundtruth.compose",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groundtruth",
        description=(
            "Ground-truth process and connection data from eBPF for incident response: "
            "collect it (run, up), store it (db), serve it (graphapi), and review the "
            "dashboards and alerts built on it."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in PARTS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
