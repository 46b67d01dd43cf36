"""A review summary of two versions of the dashboards: what a reader of the pull request needs.

Panels are matched by title and type (a rename reads as one panel removed and one added).
For each dashboard: panels added, removed, moved or resized; for each kept panel: queries
(by refId), unit, thresholds and description that changed; variables added, removed or
whose query changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from dashboards.lint import QUERY_FIELD


def load(path: Path) -> dict[str, dict]:
    """File name -> dashboard JSON, for a file or a directory of them."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    out = {}
    for f in files:
        try:
            out[f.name] = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read dashboard {f}: {e}") from e
    return out


def _panels(dash: dict) -> dict[str, dict]:
    out = {}
    for panel in dash.get("panels", []):
        for p in [panel, *panel.get("panels", [])]:
            out[f"{p.get('title', '')} [{p.get('type', '')}]"] = p
    return out


def _queries(panel: dict) -> dict[str, str]:
    out = {}
    for t in panel.get("targets", []):
        ds_type = (t.get("datasource") or panel.get("datasource") or {}).get("type", "")
        query = t.get(QUERY_FIELD.get(ds_type, "expr"), "")
        params = t.get("url_options", {}).get("params")
        if params:
            query += "?" + "&".join(f"{p['key']}={p['value']}" for p in params)
        out[t.get("refId", "?")] = query
    return out


def _defaults(panel: dict) -> dict:
    return panel.get("fieldConfig", {}).get("defaults", {})


def _thresholds(panel: dict) -> str:
    steps = _defaults(panel).get("thresholds", {}).get("steps", [])
    return ", ".join(f"{s.get('color')}@{s.get('value')}" for s in steps) or "none"


def _where(panel: dict) -> str:
    g = panel.get("gridPos") or {}
    return f"({g.get('x')},{g.get('y')}) {g.get('w')}x{g.get('h')}"


def _panel_changes(old: dict, new: dict) -> list[str]:
    lines = []
    og, ng = old.get("gridPos") or {}, new.get("gridPos") or {}
    if (og.get("x"), og.get("y")) != (ng.get("x"), ng.get("y")):
        lines.append(f"moved {_where(old)} -> {_where(new)}")
    elif (og.get("w"), og.get("h")) != (ng.get("w"), ng.get("h")):
        lines.append(f"resized {_where(old)} -> {_where(new)}")
    oq, nq = _queries(old), _queries(new)
    for ref in sorted(oq.keys() | nq.keys()):
        if ref not in nq:
            lines.append(f"query {ref} removed: {oq[ref]}")
        elif ref not in oq:
            lines.append(f"query {ref} added: {nq[ref]}")
        elif oq[ref] != nq[ref]:
            lines.append(f"query {ref} changed:\n        - {oq[ref]}\n        + {nq[ref]}")
    ou, nu = _defaults(old).get("unit"), _defaults(new).get("unit")
    if ou != nu:
        lines.append(f"unit {ou} -> {nu}")
    if _thresholds(old) != _thresholds(new):
        lines.append(f"thresholds {_thresholds(old)} -> {_thresholds(new)}")
    if old.get("description") != new.get("description"):
        lines.append("description changed")
    return lines


def _variable_changes(old: dict, new: dict) -> list[str]:
    ov = {v["name"]: v for v in old.get("templating", {}).get("list", [])}
    nv = {v["name"]: v for v in new.get("templating", {}).get("list", [])}
    lines = [f"variable ${n} added" for n in sorted(nv.keys() - ov.keys())]
    lines += [f"variable ${n} removed" for n in sorted(ov.keys() - nv.keys())]
    for n in sorted(ov.keys() & nv.keys()):
        if ov[n].get("query") != nv[n].get("query"):
            lines.append(f"variable ${n} query: {ov[n].get('query')} -> {nv[n].get('query')}")
    return lines


def diff_dashboard(old: dict, new: dict) -> list[str]:
    """Readable lines describing what changed from ``old`` to ``new``; [] when nothing did."""
    lines = []
    if old.get("title") != new.get("title"):
        lines.append(f"title {old.get('title')!r} -> {new.get('title')!r}")
    lines += _variable_changes(old, new)
    op, np_ = _panels(old), _panels(new)
    # In dashboard order: additions, removals, then changes to kept panels.
    lines += [f"+ panel {k} at {_where(p)}" for k, p in np_.items() if k not in op]
    lines += [f"- panel {k} (was at {_where(p)})" for k, p in op.items() if k not in np_]
    for key, panel in np_.items():
        changes = _panel_changes(op[key], panel) if key in op else []
        if changes:
            lines.append(f"~ panel {key}:")
            lines += [f"    {c}" for c in changes]
    return lines


def diff(old: dict[str, dict], new: dict[str, dict]) -> str:
    """The summary for two sets of dashboards (file name -> JSON)."""
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            out.append(f"## {name}: new dashboard ({len(_panels(new[name]))} panels)")
            continue
        if name not in new:
            out.append(f"## {name}: dashboard removed")
            continue
        lines = diff_dashboard(old[name], new[name])
        if lines:
            out.append(f"## {name} ({new[name].get('title')})")
            out += lines
    return "\n".join(out) if out else "No changes."
