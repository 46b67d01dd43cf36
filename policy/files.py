"""Policy files: one YAML file per workload, read with FILE:LINE errors, written deterministically.

::

    workload: nginx.service
    mode: audit                 # deviations are flagged (the only mode)
    severity: medium            # of the flags deviations raise
    executables:
      /usr/sbin/nginx:          # 3 execs, first 2026-12-05T19:00:01Z, last ...
        parents: [systemd]      # parent programs that may start it (block lists carry comments)
        users: [0, 33]          # real uids (or user names) it may run as
    listen: [80, 443]
    outbound:
      - {to: 10.0.0.0/8, port: 5432}     # an address or CIDR, and a port ('*': any)
    inbound:
      - {from: 127.0.0.1, port: 80}      # a source address or CIDR, and the local port

Comments after an entry are kept by ``merge``; everything is written sorted, so learning the
same events again writes the same bytes.
"""

from __future__ import annotations

import json
import pwd
import re
from pathlib import Path

import yaml

from mixin.yaml_files import compose_yaml_file
from policy.model import (
    ANY_PORT,
    KINDS,
    MODES,
    SEVERITIES,
    Endpoint,
    Policy,
    sorted_keys,
)

TOP_KEYS = ("workload", "mode", "severity", "executables", "listen", "outbound", "inbound")
EXEC_KEYS = ("parents", "users")
ENDPOINT_FIELD = {"outbound": "to", "inbound": "from"}
HEADER = (
    "# groundtruth baseline policy for one workload (docs/baselines.md): what it may run,\n"
    "# listen on and connect with; anything else is a deviation, flagged live with --policies.\n"
    "# Comments say how often and when each entry was seen while learning.\n"
)


class PolicyError(ValueError):
    """A bad policy file: the message starts with ``FILE:LINE:``."""


# -- reading ---------------------------------------------------------------------------------
class _PolicyReader:
    """Checked values from a policy file's YAML nodes; errors carry FILE:LINE."""

    def __init__(self, path: str, lines: list[str]):
        self.path, self.lines = path, lines

    def fail(self, node, message: str):
        raise PolicyError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def fields(self, node, what: str, known) -> dict:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        out = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if known is not None and name not in known:
                self.fail(key, f"{what}: unknown key {name!r} (known: {', '.join(known)})")
            if name in out:
                self.fail(key, f"{what}: {name!r} is given twice")
            out[name] = (key, value)
        return out

    def items(self, node, what: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return node.value

    def text(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            self.fail(node, f"{what} must be a non-empty string")
        return node.value

    def port(self, node, what: str, any_allowed: bool = False) -> int:
        value: str = node.value if isinstance(node, yaml.ScalarNode) else ""
        if any_allowed and value == "*":
            return ANY_PORT
        if not value.isdigit() or not 0 < int(value) < 65536:
            self.fail(node, f"{what} must be a port (1-65535{', or *' if any_allowed else ''})")
        return int(value)

    def uid(self, node, what: str) -> int:
        name = self.text(node, what)
        if name.isdigit():
            return int(name)
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            self.fail(node, f"{what}: no user named {name!r} on this host")
            raise  # not reached

    def comment(self, node) -> str:
        """The comment after a node on its line ('' if none)."""
        end = node.end_mark
        line = self.lines[end.line] if end.line < len(self.lines) else ""
        at = line.find("#", end.column)
        return line[at + 1 :].strip() if at >= 0 else ""


def load_policy(path: str | Path) -> Policy:
    """One policy file, checked."""
    path = str(path)
    text, root = compose_yaml_file(path, "policy file", PolicyError)
    r = _PolicyReader(path, text.splitlines())
    top = r.fields(root, "a policy", TOP_KEYS)
    if "workload" not in top:
        r.fail(root, "a policy needs 'workload' (the workload it is for)")
    policy = Policy(workload=r.text(top["workload"][1], "workload"), path=path)
    if "mode" in top:
        policy.mode = _choice(r, top["mode"][1], "mode", MODES)
    if "severity" in top:
        policy.severity = _choice(r, top["severity"][1], "severity", SEVERITIES)
    if "executables" in top:
        _executables(r, top["executables"][1], policy)
    if "listen" in top:
        for node in r.items(top["listen"][1], "listen"):
            policy.entries[("listen", r.port(node, "listen item"))] = r.comment(node)
    for kind, field_name in ENDPOINT_FIELD.items():
        if kind in top:
            for node in r.items(top[kind][1], kind):
                ep = _endpoint(r, node, kind, field_name)
                policy.entries[(kind, ep)] = r.comment(node)
    policy.compile()
    return policy


def _choice(r: _PolicyReader, node, what: str, allowed) -> str:
    value = r.text(node, what)
    if value not in allowed:
        r.fail(node, f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _executables(r: _PolicyReader, node, policy: Policy) -> None:
    found = r.fields(node, "executables", None)
    for path, (knode, vnode) in found.items():
        if not path:
            r.fail(knode, "executables: each key must be an executable's path")
        policy.entries[("exec", path)] = r.comment(knode)
        if isinstance(vnode, yaml.ScalarNode) and vnode.value in ("", "~", "null"):
            continue  # allowed, with no parents or users given
        what = f"executable {path}"
        fields = r.fields(vnode, what, EXEC_KEYS)
        if "parents" in fields:
            for n in r.items(fields["parents"][1], f"{what}: parents"):
                program = r.text(n, f"{what}: parents item")
                policy.entries[("parent", path, program)] = r.comment(n)
        if "users" in fields:
            for n in r.items(fields["users"][1], f"{what}: users"):
                policy.entries[("user", path, r.uid(n, f"{what}: users item"))] = r.comment(n)


def _endpoint(r: _PolicyReader, node, kind: str, field_name: str) -> Endpoint:
    what = f"{kind} item"
    fields = r.fields(node, what, (field_name, "port"))
    for name in (field_name, "port"):
        if name not in fields:
            r.fail(node, f"{what} needs '{field_name}' (an address or CIDR) and 'port'")
    addr_node = fields[field_name][1]
    address = r.text(addr_node, f"{what}: {field_name}")
    port = r.port(fields["port"][1], f"{what}: port", any_allowed=True)
    try:
        return Endpoint.of(address, port)
    except ValueError as e:
        r.fail(addr_node, f"{what}: {address!r} is not an address or CIDR ({e})")
        raise  # not reached


def load_policies(directory: str | Path) -> dict[str, Policy]:
    """Every ``*.yaml`` / ``*.yml`` policy of a directory, by workload; a workload given by two
    files is an error naming both."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(f"{directory}: not a directory of policy files")
    policies: dict[str, Policy] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        policy = load_policy(path)
        if policy.workload in policies:
            raise PolicyError(
                f"{path}:1: workload {policy.workload!r} already has a policy in "
                f"{policies[policy.workload].path}"
            )
        policies[policy.workload] = policy
    return policies


# -- writing ---------------------------------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+:=-]*$")


def scalar(text: str) -> str:
    """text as a YAML scalar that reads back as the same string (quoted when it must be)."""
    if _PLAIN.match(text) and not text.endswith(":"):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _line(indent: int, body: str, comment: str) -> str:
    return " " * indent + body + (f"  # {comment}" if comment else "") + "\n"


def render(policy: Policy) -> str:
    """The policy file's text: sorted, stable, each entry with its comment."""
    out = [HEADER, f"workload: {scalar(policy.workload)}\n", f"mode: {policy.mode}\n"]
    out.append(f"severity: {policy.severity}\n")
    keys = sorted_keys(policy.entries)
    by_kind: dict[str, list[tuple]] = {kind: [] for kind in KINDS}
    for key in keys:
        by_kind[key[0]].append(key)
    out.append("executables:" + ("\n" if by_kind["exec"] else " {}\n"))
    for key in by_kind["exec"]:
        path = key[1]
        parents = [k for k in by_kind["parent"] if k[1] == path]
        users = [k for k in by_kind["user"] if k[1] == path]
        out.append(_line(2, f"{scalar(path)}:", policy.entries[key]))
        for name, items in (("parents", parents), ("users", users)):
            if items:
                out.append(f"    {name}:\n")
                out += [
                    _line(6, f"- {k[2] if name == 'users' else scalar(k[2])}", policy.entries[k])
                    for k in items
                ]
    out.append("listen:" + ("\n" if by_kind["listen"] else " []\n"))
    out += [_line(2, f"- {k[1]}", policy.entries[k]) for k in by_kind["listen"]]
    for kind, field_name in ENDPOINT_FIELD.items():
        out.append(f"{kind}:" + ("\n" if by_kind[kind] else " []\n"))
        for k in by_kind[kind]:
            ep: Endpoint = k[1]
            port = str(ep.port) if ep.port else '"*"'
            body = f"- {{{field_name}: {scalar(ep.text())}, port: {port}}}"
            out.append(_line(2, body, policy.entries[k]))
    return "".join(out)


def file_name(workload: str) -> str:
    """A policy file's name for a workload: k8s:shop/api/server -> k8s_shop_api_server.yaml."""
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", workload).strip(".") + ".yaml"
