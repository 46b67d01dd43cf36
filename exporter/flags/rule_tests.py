"""``groundtruth flags test FILE``: rule tests on recorded events, as ``promtool test rules``.

A test file (YAML)::

    rules: ../mixin/flag_rules.yaml   # optional, relative to this file; default: shipped
    thresholds: {flag_crash_loop_exits: 3}  # optional, on top of the thresholds file's
    tests:
      - name: a program run from /tmp
        events:                             # or events_file: recorded.jsonl (the JSON sink's lines)
          - {type: process, kind: exec, pid: 42, process_key: h:42:7, filename: /tmp/x}
        expect:
          - {rule_id: exec_from_tmp, severity: high, process_key: h:42:7}

Events are given with the fields of their event class (``type``: process, tcp_connection,
tcp_listen, or the class name the JSON sink writes); fields left out take their defaults, and
``time_ns`` defaults to one millisecond apart. Each test runs on a fresh detector; its flags
are compared with ``expect`` on the keys the expectations name: pass, or a diff.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from exporter.flags.detector import Detector
from exporter.flags.families.exec_rules import SECURITY_FIELDS
from exporter.flags.rulebook import load_rulebook
from mixin.yaml_files import not_valid_yaml
from schema.events import EVENT_TYPES

CLASSES = {**EVENT_TYPES, **{cls.__name__: cls for cls in EVENT_TYPES.values()}}
# Process fields the rules read that an older ProcessEvent may lack (recorded by newer probes).
RULE_READ_FIELDS = {
    **dict(zip(SECURITY_FIELDS, (0, 0, 4294967295, "", "", "", 0, 0), strict=True)),
    "prev_uid": 0, "prev_gid": 0, "prev_euid": 0, "prev_egid": 0,
}  # fmt: skip
BASE_TIME_NS = 1_700_000_000_000_000_000
STEP_NS = 1_000_000


class RuleTestError(ValueError):
    """A malformed test file: the message starts with ``FILE:LINE:``."""


class _LineLoader(yaml.SafeLoader):
    """Mappings carry ``__line__`` (1-based) and ``__key_lines__`` (each key's line) so errors
    can name the line."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        mapping["__key_lines__"] = {
            k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k.value, str)
        }
        return mapping


def _line(mapping, key: str = "") -> int:
    """The line of a mapping, or of one of its keys."""
    if not isinstance(mapping, dict):
        return 0
    return mapping.get("__key_lines__", {}).get(key) or mapping.get("__line__", 0)


def _clean(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if k not in ("__line__", "__key_lines__")}


def _mappings(items, where: str, what: str) -> list[dict]:
    """items, which must be a list of mappings (``what`` names one in the error)."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RuleTestError(f"{where}: {what} must be a list of mappings ({{field: value}})")
    return items


# Event fields a value of the wrong type would make a test pass or fail for the wrong reason
# (a port given as "http"): their dataclass types, checked.
_TYPES = {"int": int, "str": str}


def _event_class(cls, extra: set[str]):
    """cls, or (for fields only a newer probe records) a subclass that has them."""
    missing = [n for n in extra if n not in cls.__dataclass_fields__]
    if not missing:
        return cls
    added = [(n, object, dataclasses.field(default=RULE_READ_FIELDS[n])) for n in missing]
    return dataclasses.make_dataclass(cls.__name__, added, bases=(cls,))


def make_event(raw: dict, index: int, where: str):
    """One event from its recorded fields."""
    if not isinstance(raw, dict):
        raise RuleTestError(f"{where}: an event must be a mapping of its fields, not {raw!r}")
    fields = _clean(raw)
    type_name = fields.pop("type", "process")
    cls = CLASSES.get(type_name)
    if cls is None:
        raise RuleTestError(
            f"{where}: unknown event type {type_name!r} (known: {', '.join(EVENT_TYPES)})"
        )
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known - set(RULE_READ_FIELDS)
    if unknown:
        raise RuleTestError(f"{where}: {type_name} has no field {', '.join(sorted(unknown))}")
    for f in dataclasses.fields(cls):
        wanted = _TYPES.get(f.type) if isinstance(f.type, str) else None
        value = fields.get(f.name)
        if wanted and f.name in fields and type(value) is not wanted:
            noun = "an integer" if wanted is int else "text"
            raise RuleTestError(
                f"{where}: {type_name} field {f.name} must be {noun}, not {value!r}"
            )
    fields.setdefault("time_ns", BASE_TIME_NS + index * STEP_NS)
    fields.setdefault("event_id", f"event-{index}")
    fields.setdefault("host", "test")
    try:
        return _event_class(cls, set(fields) - known)(**fields)
    except TypeError as e:
        raise RuleTestError(f"{where}: {e}") from e


def _events(test: dict, base: Path, where: str) -> list:
    if "events_file" in test:
        path = base / test["events_file"]
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise RuleTestError(f"{where}: cannot read {path}: {e.strerror}") from e
        out: list[object] = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RuleTestError(f"{path}:{n}: not JSON: {e.msg}") from e
                out.append(make_event(raw, len(out), f"{path}:{n}"))
        return out
    events = test.get("events")
    if not isinstance(events, list):
        raise RuleTestError(f"{where}: a test needs events (a list) or events_file")
    file = where.rsplit(":", 1)[0]
    return [
        make_event(raw, i, f"{file}:{_line(raw) or _line(test, 'events')}")
        for i, raw in enumerate(events)
    ]


def _project(flag, keys) -> tuple:
    return tuple((k, getattr(flag, k)) for k in keys)


def run_test_file(
    path: str | Path, thresholds_base: dict | None = None, family=None, flag_kind: str = ""
) -> tuple[bool, list[str]]:
    """(all passed, report lines). ``family(doc, path)``, when given, reads what the file adds
    (baseline policies) and returns a function that adds a family to each test's detector;
    ``flag_kind`` keeps only the flags of that kind (``policy``)."""
    from mixin.config import load_config

    path = Path(path)
    try:
        doc = yaml.load(path.read_text(), Loader=_LineLoader)
    except OSError as e:
        raise RuleTestError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise RuleTestError(not_valid_yaml(path, e)) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise RuleTestError(
            f"{path}:{_line(doc, 'tests') or 1}: a rule test file needs a 'tests' list"
        )
    thresholds = dict(thresholds_base or load_config().raw["thresholds"])
    if not isinstance(doc.get("thresholds") or {}, dict):
        raise RuleTestError(f"{path}:{_line(doc, 'thresholds')}: thresholds must be a mapping")
    for key, value in _clean(doc.get("thresholds") or {}).items():
        if key not in thresholds:
            raise RuleTestError(f"{path}:{_line(doc['thresholds'])}: unknown threshold {key!r}")
        thresholds[key] = value
    rules_path = (path.parent / doc["rules"]) if doc.get("rules") else None
    rulebook = load_rulebook(rules_path)
    add_family = family(doc, path) if family is not None else None
    ok, report = True, []
    for test in doc["tests"]:
        where = f"{path}:{_line(test)}"
        if not isinstance(test, dict):
            raise RuleTestError(f"{where}: each test must be a mapping")
        name = test.get("name", f"line {_line(test)}")
        expect_at = f"{path}:{_line(test, 'expect')}"
        expected = [_clean(e) for e in _mappings(test.get("expect") or [], expect_at, "expect")]
        keys = ["rule_id", "severity", "process_key"]
        for expect in expected:
            keys += [k for k in expect if k not in keys]
        for expect in expected:
            bad = [k for k in expect if not hasattr(_FLAG_FIELDS, k)]
            if bad:
                raise RuleTestError(f"{where}: flags have no field {', '.join(bad)}")
        detector = Detector(rulebook, thresholds)
        if add_family is not None:
            add_family(detector)
        flags = detector.observe(_events(test, path.parent, where))
        if flag_kind:
            flags = [f for f in flags if f.kind == flag_kind]
        got = sorted(_project(f, keys) for f in flags)
        want = sorted(
            (tuple((k, e.get(k, _ANY)) for k in keys) for e in expected), key=_specific_first
        )
        missing, unexpected = _diff(want, got)
        if missing or unexpected:
            ok = False
            report.append(f"FAIL {where}: {name}")
            report += [f"  - expected, not raised: {_show(m)}" for m in missing]
            report += [f"  + raised, not expected: {_show(u)}" for u in unexpected]
        else:
            report.append(f"ok   {where}: {name} ({len(flags)} flags)")
    return ok, report


class _Any:
    def __repr__(self) -> str:
        return "*"


_ANY = _Any()
_FLAG_FIELDS = EVENT_TYPES["flag"]


def _specific_first(want: tuple) -> tuple:
    """Expected flags in the order they are matched: the fewest fields left open first, so an
    open one does not take the flag a more specific one needs (values of mixed types, and the
    open ones, compared as text)."""
    return sum(v is _ANY for _, v in want), [repr(v) for _, v in want]


def _matches(want: tuple, got: tuple) -> bool:
    return all(w[1] is _ANY or w[1] == g[1] for w, g in zip(want, got, strict=True))


def _diff(want: list, got: list) -> tuple[list, list]:
    left = list(got)
    missing = []
    for w in want:
        hit = next((g for g in left if _matches(w, g)), None)
        if hit is None:
            missing.append(w)
        else:
            left.remove(hit)
    return missing, left


def _show(pairs: tuple) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in pairs if v is not _ANY) + "}"
