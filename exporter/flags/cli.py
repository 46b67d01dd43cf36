"""``groundtruth flags``: check the rules file, list its rules, run rule tests."""

from __future__ import annotations

import sys

TEST_HELP = """\
Run rule tests on recorded events, as `promtool test rules` does for alert rules. Each FILE is
YAML: optional `rules` (a rules file, relative to FILE; default: the shipped one), optional
`thresholds` (flag_* numbers on top of the thresholds file), and `tests`, each with `name`,
`events` (a list of events with their event-class fields and a `type`: process, tcp_connection,
tcp_listen) or `events_file` (JSON lines as the jsonl sink writes them), and `expect` (the flags
it must raise: rule_id, severity, process_key and any other flag field). Prints ok or a diff per
test; exits 0 when every test passed, 1 when one failed, 2 on a malformed file.
"""
RULES_HELP = """\
List the rules of a rules file (default: the shipped mixin/flag_rules.yaml) with their
class, severity, technique and exceptions. With --check, only validate it: exit 0 when it is
valid, else print FILE:LINE: what is wrong and exit 2.
"""


def _fail(message: str) -> int:
    print(f"groundtruth: error: {message}", file=sys.stderr)
    return 2


def run_tests(args) -> int:
    from exporter.flags.rule_tests import RuleTestError, run_test_file
    from exporter.flags.rulebook import RulebookError

    all_ok = True
    for path in args.files:
        try:
            ok, report = run_test_file(path)
        except (RuleTestError, RulebookError) as e:
            return _fail(str(e))
        print("\n".join(report))
        all_ok &= ok
    print("SUCCESS" if all_ok else "FAILED")
    return 0 if all_ok else 1


def show_rules(args) -> int:
    from exporter.flags.rulebook import RulebookError, load_rulebook

    try:
        book = load_rulebook(args.file)
    except RulebookError as e:
        return _fail(str(e))
    if args.check:
        n = sum(len(v) for v in book.exceptions.values())
        print(f"{book.path}: {len(book.rules)} rules, {n} exceptions: valid")
        return 0
    for rule in book.rules.values():
        technique = f" {rule.technique}" if rule.technique else ""
        print(f"{rule.id} [{rule.flag_class} {rule.severity}{technique}]: {rule.meaning}")
        for exc in book.exceptions.get(rule.id, []):
            action = f"severity {exc.severity}" if exc.severity else "silenced"
            print(f"    exception at line {exc.line} ({action}): {exc.reason}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("flags", help="flag rules: check them, list them, test them")
    fsub = p.add_subparsers(dest="flags_command", metavar="ACTION")
    t = fsub.add_parser(
        "test", help="run rule tests on recorded events (like promtool test rules)",
        description=TEST_HELP,
    )  # fmt: skip
    t.add_argument("files", nargs="+", metavar="FILE", help="rule test file (YAML)")
    t.set_defaults(func=run_tests)
    r = fsub.add_parser("rules", help="list or --check the rules file", description=RULES_HELP)
    r.add_argument("file", nargs="?", help="rules file (default: the shipped one)")
    r.add_argument("--check", action="store_true", help="only validate the file")
    r.set_defaults(func=show_rules)
    p.set_defaults(func=lambda args: p.print_help() or 2)
