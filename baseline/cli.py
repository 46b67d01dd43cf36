"""``groundtruth baseline learn|diff|merge|test``: policies as code, reviewed like dashboards.

- ``learn`` writes one policy per workload from what the store saw in a window;
- ``diff`` prints, per workload, what happened that its policy does not allow, as a unified
  diff of the policy file (exactly what ``merge`` would write);
- ``merge`` writes it into the policy files;
- ``test`` runs policy tests on recorded events (like ``flags test``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

from baseline.learn import Activity, learn, noun
from incident.cli import _common as store_and_zone_arguments
from incident.cli import _window_arguments as window_arguments
from incident.cli import guarded, window_from_args
from incident.errors import IncidentError
from incident.store_access import Reader, open_from_args
from incident.times import get_zone
from policy.files import PolicyError, file_name, load_policies, render
from policy.model import Policy, Seen, sorted_keys

LEARN_HELP = """\
Learn a policy for each workload (or --workload W) from the events of a window: the
executables it ran with their parent programs and users, the ports it listened on, the
destinations it connected to and the sources it accepted, each with a comment saying how often
and when it was seen. Writes DIR/<workload>.yaml (mode audit); learning the same events again
writes the same bytes. A workload that already has a policy in DIR keeps its file (whatever its
name), its mode and its severity.
"""
DIFF_HELP = """\
What happened in a window that the policies of DIR do not allow, per workload with a policy, as
a unified diff of its policy file (what `baseline merge` would write). Exit status 0 when every
workload stayed within its policy, 1 when something did not, 2 on a bad policy file.
"""


def _policy_dir(path: str) -> dict[str, Policy]:
    try:
        return load_policies(path)
    except PolicyError as e:
        raise IncidentError(str(e), exit_code=2) from None


def _window(args):
    zone = get_zone(args.tz)
    return zone, window_from_args(args, zone, time.time_ns())


def _activity(args, workload: str | None = None) -> Activity:
    _, window = _window(args)
    store = open_from_args(args)
    try:
        return learn(Reader(store), window.start_ns, window.end_ns, workload)
    finally:
        store.close()


def learned(workload: str, seen: dict[tuple, Seen], previous: Policy | None = None) -> Policy:
    policy = Policy(workload)
    if previous is not None:
        policy.mode, policy.severity = previous.mode, previous.severity
    for key in sorted_keys(seen):
        policy.add(key, seen[key].comment(noun(key[0])))
    policy.compile()
    return policy


def merged(policy: Policy, seen: dict[tuple, Seen]) -> tuple[Policy, int]:
    """The policy with what it did not allow added, and how many activity keys that was."""
    out = Policy(policy.workload, policy.mode, policy.severity, dict(policy.entries), policy.path)
    added = 0
    for key in sorted(seen, key=lambda k: (k[0], str(k[1:]))):
        if not policy.allows(key):
            out.add(key, seen[key].comment(noun(key[0])))
            added += 1
    out.compile()
    return out, added


def run_learn(args) -> int:
    activity = _activity(args, args.workload)
    workloads = sorted(w for w in activity if w)
    if args.workload and args.workload not in activity:
        raise IncidentError(
            f"no exec, listen or connection of workload {args.workload!r} in the window",
            exit_code=1,
        )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    existing = _policy_dir(str(out))  # a workload's policy stays in its file, whatever its name
    for workload in workloads:
        previous = existing.get(workload)
        path = Path(previous.path) if previous else out / file_name(workload)
        text = render(learned(workload, activity.seen(workload), previous))
        changed = not path.exists() or path.read_text() != text
        if changed:
            path.write_text(text)
        n = len(activity[workload])
        print(f"{path}: {'written' if changed else 'unchanged'} ({n} entries)")
    return 0


def _changes(args):
    """(policy, merged policy, keys added) per workload with a policy; workloads without one."""
    policies = _policy_dir(args.policies)
    activity = _activity(args)
    changes = []
    for workload, policy in sorted(policies.items()):
        new, added = merged(policy, activity.seen(workload))
        changes.append((policy, new, added))
    unpoliced = sorted(w for w in activity if w and w not in policies)
    return changes, unpoliced


def run_diff(args) -> int:
    changes, unpoliced = _changes(args)
    differs = False
    for policy, new, added in changes:
        if not added:
            continue
        differs = True
        before, after = render(policy).splitlines(True), render(new).splitlines(True)
        print(f"# workload {policy.workload}: {added} entries its policy does not allow")
        sys.stdout.writelines(
            difflib.unified_diff(before, after, policy.path, f"{policy.path} (merged)")
        )
    if not differs:
        print(f"every workload with a policy in {args.policies} stayed within it")
    if unpoliced:
        print(f"# workloads without a policy: {', '.join(unpoliced)}")
    return 1 if differs else 0


def run_merge(args) -> int:
    changes, _ = _changes(args)
    for policy, new, added in changes:
        if added:
            Path(policy.path).write_text(render(new))
            print(f"{policy.path}: {added} entries added")
    if not any(added for _, _, added in changes):
        print(f"nothing to merge: every workload with a policy in {args.policies} stayed within it")
    return 0


def run_test(args) -> int:
    from exporter.flags.policy_tests import run_policy_test_file
    from exporter.flags.rule_tests import RuleTestError
    from exporter.flags.rulebook import RulebookError

    all_ok = True
    for path in args.files:
        try:
            ok, report = run_policy_test_file(path)
        except (RuleTestError, RulebookError) as e:
            print(f"groundtruth baseline test: {e}", file=sys.stderr)
            return 2
        print("\n".join(report))
        all_ok &= ok
    print("SUCCESS" if all_ok else "FAILED")
    return 0 if all_ok else 1


def register(sub) -> None:
    p = sub.add_parser("baseline", help="baseline policies per workload: learn, diff, merge, test")
    bsub = p.add_subparsers(dest="baseline_command", metavar="ACTION")
    learn_p = bsub.add_parser("learn", help="learn a policy per workload", description=LEARN_HELP)
    store_and_zone_arguments(learn_p)
    window_arguments(learn_p, "24h")
    learn_p.add_argument("--workload", help="only this workload")
    learn_p.add_argument("-o", "--output", required=True, metavar="DIR", help="policy directory")
    learn_p.set_defaults(func=guarded("baseline learn", run_learn))
    for name, func, help_text, description in (
        ("diff", run_diff, "what happened that the policies do not allow", DIFF_HELP),
        ("merge", run_merge, "add what happened to the policy files", None),
    ):
        d = bsub.add_parser(name, help=help_text, description=description or help_text)
        d.add_argument("policies", metavar="DIR", help="policy directory")
        store_and_zone_arguments(d)
        window_arguments(d, "1h")
        d.set_defaults(func=guarded(f"baseline {name}", func))
    t = bsub.add_parser(
        "test",
        help="run policy tests on recorded events (like flags test)",
        description="Policy tests: like `groundtruth flags test` (see its --help), with "
        "`policies: DIR` (relative to the file) and expected flags of kind policy "
        "(rule_id policy_exec, policy_parent, policy_user, policy_listen, policy_outbound, "
        "policy_inbound).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("files", nargs="+", metavar="FILE", help="policy test file (YAML)")
    t.set_defaults(func=run_test)
    p.set_defaults(func=lambda args: p.print_help() or 2)
