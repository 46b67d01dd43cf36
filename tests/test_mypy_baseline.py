"""make lint's type check: mypy's errors are held to scripts/mypy-baseline.txt, which only
shrinks (a new error fails, and so does a fixed one left in the baseline)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mypy_baseline.py"


def load_checker():
    spec = importlib.util.spec_from_file_location("mypy_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_code_holds_to_the_baseline_and_any_difference_fails(tmp_path, capsys):
    checker = load_checker()
    known = checker.BASELINE.read_text().splitlines()
    assert checker.main([]) == 0
    checker.BASELINE = tmp_path / "baseline.txt"
    checker.BASELINE.write_text("\n".join(known[1:]) + "\n")  # one error not yet known
    assert checker.main([]) == 1
    assert f"mypy: new error: {known[0]}" in capsys.readouterr().out
    checker.BASELINE.write_text("\n".join([*known, "x.py: error: gone  [misc]"]) + "\n")
    assert checker.main([]) == 1
    assert "fixed, remove it from the baseline" in capsys.readouterr().out
