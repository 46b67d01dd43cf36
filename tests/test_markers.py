"""Markers come from the fixtures a test uses (conftest.py), not from a hand-written mark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def collected(marker: str, path: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", marker, path],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return {line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line}


def test_a_test_asking_for_ebpf_is_marked_ebpf_and_only_it():
    # The tests that ask for ebpf_problems (they start the real exporter); the others do not.
    assert collected("ebpf", "tests/test_run_command.py") == {
        "test_sigterm_flushes_every_event",
        "test_a_metrics_port_in_use_is_one_line_before_anything_starts[run]",
        "test_a_metrics_port_in_use_is_one_line_before_anything_starts[up]",
        "test_an_unwritable_jsonl_sink_is_one_line_and_exit_2[/nonexistent/dir/x.jsonl-No such "
        "file or directory]",
        "test_an_unwritable_jsonl_sink_is_one_line_and_exit_2[/proc/x-No such file or directory]",
        "test_an_unwritable_jsonl_sink_is_one_line_and_exit_2[/tmp-Is a directory]",
        "test_every_drop_reason_is_exported_from_the_start",
        "test_sighup_reloads_the_policies_and_a_bad_file_keeps_them",
    }


def test_a_test_starting_a_server_is_marked_services():
    assert collected("services", "tests/test_prometheus_fixtures.py") == {
        "test_prometheus_scrapes_itself_and_evaluates_a_rule",
        "test_prometheus_rejects_a_bad_query_with_its_error",
        "test_alertmanager_starts_with_clustering_off",
    }
