"""``groundtruth baseline test FILE``: policy tests on recorded events, as ``flags test`` runs
rule tests (exporter/flags/rule_tests.py, whose file format this extends)::

    policies: policies/            # the policy directory, relative to this file
    tests:
      - name: a new program
        events:
          - {type: process, kind: exec, process_key: h:42:7, workload: nginx.service,
             filename: /usr/bin/nc}
        expect:
          - {rule_id: policy_exec, severity: medium, process_key: h:42:7}

Only the flags of kind ``policy`` are compared (the rules' flags are ``flags test``'s).
"""

from __future__ import annotations

from pathlib import Path

from exporter.flags.policies import PolicyFamily
from exporter.flags.rule_tests import RuleTestError, _line, run_test_file
from policy.files import PolicyError, load_policies


def _policies_of(doc: dict, path: Path):
    """The file's policies, loaded once; each test's detector gets its own family of them."""
    where = f"{path}:{_line(doc, 'policies')}"
    if not doc.get("policies"):
        raise RuleTestError(f"{where}: a policy test needs 'policies' (a directory)")
    if not isinstance(doc["policies"], str):
        raise RuleTestError(f"{where}: 'policies' must be a directory: {doc['policies']!r}")
    directory = path.parent / doc["policies"]
    if not directory.is_dir():
        raise RuleTestError(f"{where}: 'policies' {directory} is not a directory")
    try:
        policies = load_policies(directory)
    except PolicyError as e:
        raise RuleTestError(str(e)) from e

    def add(detector) -> None:
        detector.add_family(PolicyFamily(policies, detector))

    return add


def run_policy_test_file(path: str | Path) -> tuple[bool, list[str]]:
    """(all passed, report lines)."""
    return run_test_file(path, family=_policies_of, flag_kind="policy")
