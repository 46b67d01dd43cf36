"""mypy on the production packages, held to a checked-in baseline that only shrinks.

``python scripts/mypy_baseline.py`` (run by ``make lint``) fails when mypy reports an error the
baseline does not hold (new and touched code must be clean), or when the baseline holds one mypy
no longer reports (a fixed error leaves the baseline: ``--update`` rewrites it). Errors are
compared without their line numbers, so code that moves does not churn the baseline.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).with_name("mypy-baseline.txt")


def current_errors() -> list[str]:
    """mypy's errors (config in pyproject.toml), each as ``path: error: message  [code]``."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed: {done.stderr or done.stdout}")
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    return sorted(re.sub(r"^([^:]+):\d+: ", r"\1: ", line) for line in errors)


def main(argv: list[str]) -> int:
    errors = current_errors()
    if "--update" in argv:
        BASELINE.write_text("".join(f"{e}\n" for e in errors))
        print(f"{BASELINE.relative_to(ROOT)}: {len(errors)} known errors")
        return 0
    known = Counter(BASELINE.read_text().splitlines())
    found = Counter(errors)
    new, fixed = found - known, known - found
    for e in sorted(new.elements()):
        print(f"mypy: new error: {e}")
    for e in sorted(fixed.elements()):
        print(f"mypy: fixed, remove it from the baseline (--update): {e}")
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
