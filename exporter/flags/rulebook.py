"""The rules file: rule definitions and exceptions, loaded and validated with file and line.

The file (``mixin/flag_rules.yaml`` by default) is read through PyYAML's node tree, so
every error names the file and line of what is wrong. A rule's logic lives in Python under its
id (``exporter.flags.families``); the file gives its class, severity, technique, meaning and the
lists it matches; its numbers come from the thresholds file (``mixin/mixin.yaml``).
"""

from __future__ import annotations

import fnmatch
import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mixin.yaml_files import compose_yaml_file

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "mixin" / "flag_rules.yaml"
CLASSES = ("security", "operations")
SEVERITIES = ("info", "low", "medium", "high", "critical")
_TECHNIQUE = re.compile(r"^(T[0-9]{4}(\.[0-9]{3})?)?$")
RULE_KEYS = {"id", "class", "severity", "technique", "meaning"}
EXCEPTION_KEYS = {
    "id",
    "rule",
    "programs",
    "ancestors",
    "containers",
    "users",
    "severity",
    "reason",
}


class RulebookError(ValueError):
    """A bad rules file: the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True)
class Rule:
    id: str
    flag_class: str
    severity: str
    technique: str
    meaning: str
    params: dict  # the rule's lists (paths, programs, shells, ...), as its family declares them
    line: int


def glob_pattern(patterns) -> re.Pattern | None:
    """One compiled regex for a list of shell-style patterns (None for an empty list)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True)
class RuleException:
    """Silences a rule (or sets another severity) where every condition given matches."""

    id: str
    rule: str
    programs: re.Pattern | None
    ancestors: re.Pattern | None
    containers: re.Pattern | None
    users: frozenset[int] | None
    severity: str  # '' silences
    reason: str
    line: int


@dataclass
class Rulebook:
    path: str
    rules: dict[str, Rule] = field(default_factory=dict)
    exceptions: dict[str, list[RuleException]] = field(default_factory=dict)


class _Reader:
    """Turns YAML nodes into checked values; every error carries FILE:LINE."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, node, message: str):
        raise RulebookError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node, what: str) -> dict[str, tuple]:
        """{key: (key node, value node)} of a mapping node."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        out = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail(key, f"{what}: keys must be plain names")
            if key.value in out:
                self.fail(key, f"{what}: {key.value!r} is given twice")
            out[key.value] = (key, value)
        return out

    def sequence(self, node, what: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return node.value

    def text(self, node, what: str, allowed=None) -> str:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what} must be a string")
        if allowed is not None and node.value not in allowed:
            self.fail(node, f"{what} must be one of {', '.join(allowed)}, not {node.value!r}")
        return node.value

    def texts(self, node, what: str) -> list[str]:
        items = [self.text(n, f"{what} item") for n in self.sequence(node, what)]
        if not items:
            self.fail(node, f"{what} must not be empty")
        return items

    def ints(self, node, what: str) -> list[int]:
        out = []
        for n in self.sequence(node, what):
            if not isinstance(n, yaml.ScalarNode) or not n.value.isdigit():
                self.fail(n, f"{what} items must be whole numbers, not {n.value!r}")
            out.append(int(n.value))
        return out

    def users(self, node, what: str) -> frozenset[int]:
        uids = set()
        for n in self.sequence(node, what):
            name = self.text(n, f"{what} item")
            if name.isdigit():
                uids.add(int(name))
                continue
            try:
                uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                self.fail(n, f"{what}: no user named {name!r} on this host")
        return frozenset(uids)


def load_rulebook(path: str | Path | None = None, families=None) -> Rulebook:
    """The rules file at ``path`` (default: the one shipped), checked against the families."""
    from exporter.flags.families import FAMILY_PARAMS

    params_of = FAMILY_PARAMS if families is None else families
    path = str(path or DEFAULT_RULES_PATH)
    _, root = compose_yaml_file(path, "rules file", RulebookError)
    r = _Reader(path)
    top = r.mapping(root, "the rules file")
    for key, (knode, _) in top.items():
        if key not in ("rules", "exceptions"):
            r.fail(knode, f"unknown key {key!r} (known: exceptions, rules)")
    if "rules" not in top:
        r.fail(root, "the rules file has no 'rules' list")
    book = Rulebook(path)
    for node in r.sequence(top["rules"][1], "rules"):
        rule = _rule(r, node, params_of)
        if rule.id in book.rules:
            r.fail(
                node,
                f"rule {rule.id!r} is defined twice (first at line {book.rules[rule.id].line})",
            )
        book.rules[rule.id] = rule
    ids: dict[str, int] = {}
    if "exceptions" in top:
        for node in r.sequence(top["exceptions"][1], "exceptions"):
            exc = _exception(r, node, book.rules)
            if exc.id in ids:
                r.fail(node, f"exception {exc.id!r} is defined twice (first at line {ids[exc.id]})")
            ids[exc.id] = exc.line
            book.exceptions.setdefault(exc.rule, []).append(exc)
    return book


def _rule(r: _Reader, node, params_of: dict) -> Rule:
    fields_ = r.mapping(node, "a rule")
    for key in ("id", "class", "severity", "technique", "meaning"):
        if key not in fields_:
            r.fail(node, f"rule lacks {key!r}")
    rule_id = r.text(fields_["id"][1], "id")
    if rule_id not in params_of:
        r.fail(
            fields_["id"][1],
            f"no rule logic named {rule_id!r} (known: {', '.join(sorted(params_of))})",
        )
    declared = params_of[rule_id]  # name -> "texts" | "ints"
    params = {}
    for key, (knode, vnode) in fields_.items():
        if key in RULE_KEYS:
            continue
        kind = declared.get(key, "").rstrip("?")
        if not kind:
            known = ", ".join(sorted(RULE_KEYS | set(declared)))
            r.fail(knode, f"rule {rule_id}: unknown key {key!r} (known: {known})")
        what = f"rule {rule_id}: {key}"
        params[key] = tuple(r.ints(vnode, what) if kind == "ints" else r.texts(vnode, what))
    for key, kind in declared.items():
        if key not in params and not kind.endswith("?"):  # "texts?": may be left out
            r.fail(node, f"rule {rule_id} lacks {key!r}")
    technique = r.text(fields_["technique"][1], "technique")
    if not _TECHNIQUE.match(technique):
        r.fail(
            fields_["technique"][1],
            f"technique must be a MITRE ATT&CK id like T1059.004, not {technique!r}",
        )
    cls = r.text(fields_["class"][1], "class", CLASSES)
    if cls == "security" and not technique:
        r.fail(fields_["technique"][1], f"security rule {rule_id} needs a MITRE ATT&CK technique")
    meaning = r.text(fields_["meaning"][1], "meaning")
    if not meaning.strip():
        r.fail(fields_["meaning"][1], f"rule {rule_id}: meaning must say what the rule means")
    return Rule(
        id=rule_id,
        flag_class=cls,
        severity=r.text(fields_["severity"][1], "severity", SEVERITIES),
        technique=technique,
        meaning=" ".join(meaning.split()),
        params=params,
        line=node.start_mark.line + 1,
    )


def _exception(r: _Reader, node, rules: dict[str, Rule]) -> RuleException:
    fields_ = r.mapping(node, "an exception")
    for key, (knode, _) in fields_.items():
        if key not in EXCEPTION_KEYS:
            r.fail(
                knode,
                f"exception: unknown key {key!r} (known: {', '.join(sorted(EXCEPTION_KEYS))})",
            )
    for key in ("id", "rule", "reason"):
        if key not in fields_:
            r.fail(node, f"exception lacks {key!r}")
    rule = r.text(fields_["rule"][1], "rule")
    if rule not in rules:
        r.fail(fields_["rule"][1], f"exception for unknown rule {rule!r}")
    if not {"programs", "ancestors", "containers", "users"} & fields_.keys():
        r.fail(node, "exception must name programs, ancestors, containers or users")

    def patterns(key):
        return glob_pattern(r.texts(fields_[key][1], key)) if key in fields_ else None

    severity = ""
    if "severity" in fields_:
        severity = r.text(fields_["severity"][1], "severity", SEVERITIES)
    return RuleException(
        id=r.text(fields_["id"][1], "id"),
        rule=rule,
        programs=patterns("programs"),
        ancestors=patterns("ancestors"),
        containers=patterns("containers"),
        users=r.users(fields_["users"][1], "users") if "users" in fields_ else None,
        severity=severity,
        reason=" ".join(r.text(fields_["reason"][1], "reason").split()),
        line=node.start_mark.line + 1,
    )
