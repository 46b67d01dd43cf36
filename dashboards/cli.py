"""``groundtruth dashboards build|diff|lint``."""

from __future__ import annotations

import sys
from pathlib import Path

from dashboards import build, diff, lint
from mixin.config import MixinConfigError, load_config


def _build(args) -> int:
    try:
        cfg = load_config(args.config)
    except MixinConfigError as e:
        print(f"groundtruth dashboards build: {e}", file=sys.stderr)
        return 2
    for path in build.write(cfg, Path(args.out)):
        print(path)
    return 0


def _diff(args) -> int:
    try:
        print(diff.diff(diff.load(args.old), diff.load(args.new)))
    except ValueError as e:
        print(f"groundtruth dashboards diff: {e}", file=sys.stderr)
        return 2
    return 0


def _lint(args) -> int:
    dashboards = {}
    try:
        for path in args.paths:
            dashboards.update({f"{path}/{k}": v for k, v in diff.load(Path(path)).items()})
    except ValueError as e:
        print(f"groundtruth dashboards lint: {e}", file=sys.stderr)
        return 2
    problems = lint.lint(dashboards)
    for problem in problems:
        print(problem)
    print(f"{len(dashboards)} dashboards, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def register(sub) -> None:
    p = sub.add_parser("dashboards", help="build, review and lint the Grafana dashboards")
    cmds = p.add_subparsers(dest="dashboards_command", metavar="ACTION", required=True)

    b = cmds.add_parser("build", help="write the dashboards' JSON")
    b.add_argument("--config", help="YAML file merged over mixin/mixin.yaml")
    b.add_argument("--out", default=str(build.GENERATED_DIR), help="output directory")
    b.set_defaults(func=_build)

    d = cmds.add_parser("diff", help="review summary of two dashboard files or directories")
    d.add_argument("old")
    d.add_argument("new")
    d.set_defaults(func=_diff)

    ln = cmds.add_parser("lint", help="lint dashboard files or directories")
    ln.add_argument("paths", nargs="*", default=[str(build.GENERATED_DIR)])
    ln.set_defaults(func=_lint)
