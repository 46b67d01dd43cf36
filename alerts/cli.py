"""``groundtruth alerts build|test``: generate the alerting artifacts and check them."""

from __future__ import annotations

import sys
from pathlib import Path

from alerts import build
from mixin.config import MixinConfigError, load_config


def _build(args) -> int:
    try:
        cfg = load_config(args.config)
    except MixinConfigError as e:
        print(f"groundtruth alerts build: {e}", file=sys.stderr)
        return 2
    # promtool tests are written for the default thresholds.
    for path in build.write(cfg, Path(args.out), with_tests=args.config is None):
        print(path)
    return 0


def _test(args) -> int:
    failed = 0
    for result in build.check(Path(args.dir)):
        status = "ok" if result.ok else "FAILED"
        print(f"{status}: {' '.join(result.command)}")
        if not result.ok:
            failed += 1
            print(result.output, file=sys.stderr)
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("alerts", help="build and test the Prometheus rules and Alertmanager config")
    cmds = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    b = cmds.add_parser("build", help="write rules, promtool tests and alertmanager.yml")
    b.add_argument("--config", help="YAML file merged over mixin/mixin.yaml")
    b.add_argument("--out", default=str(build.GENERATED_DIR), help="output directory")
    b.set_defaults(func=_build)

    t = cmds.add_parser("test", help="promtool check/test rules and amtool check-config")
    t.add_argument("--dir", default=str(build.GENERATED_DIR), help="directory built by build")
    t.set_defaults(func=_test)
