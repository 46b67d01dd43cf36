"""Dashboard JSON against grafana-foundation-sdk's typed models (Grafana's own dashboard schema).

The SDK's ``from_json`` keeps the keys it knows and drops the rest without a word, and stores
values as they come. ``problems(dashboard)`` walks the JSON beside the models' type hints
instead and names every key the model does not have, every value of the wrong type, and every
``null`` where the model wants a value (a model's own required-and-nullable fields, such as a
threshold's base ``value``, are the only ``null`` allowed). Panel options and field config are
checked against the panel plugin's models, Prometheus queries against the Prometheus query
model; queries of plugins the SDK has no model for (Infinity, ClickHouse) are left to the tests
of those plugins' query fields.
"""

from __future__ import annotations

import enum
import functools
import inspect
import re
import types
import typing

from grafana_foundation_sdk.cog import plugins, runtime, variants
from grafana_foundation_sdk.models import dashboard as sdk

plugins.register_default_plugins()


def problems(dash: dict) -> list[str]:
    return _check(dash, sdk.Dashboard, "dashboard")


def _is_model(hint) -> bool:
    return isinstance(hint, type) and hasattr(hint, "from_json") and hasattr(hint, "to_json")


@functools.cache
def _fields(cls) -> dict[str, tuple[str, object]]:
    """JSON key -> (attribute, type hint) of a model class."""
    hints = typing.get_type_hints(cls.__init__)
    hints.pop("return", None)
    out = {}
    for key, attr in _json_keys(cls):
        out[key] = (attr, hints[attr])
    return out


def _json_keys(cls) -> list[tuple[str, str]]:
    """(JSON key, attribute) pairs, read from the generated ``from_json``: the SDK keeps that
    mapping nowhere else (``fieldConfig`` -> ``field_config``, ``type`` -> ``type_val``)."""
    source = inspect.getsource(cls.from_json)
    keys = re.findall(r'if "(\w+)" in data:\s*\n(?:\s*\S.*\n)*?\s*args\["(\w+)"\]', source)
    return keys


@functools.cache
def _nullable(cls) -> frozenset[str]:
    """Keys the model writes even when None: required fields whose type admits null."""
    return frozenset(k for k, v in cls().to_json().items() if v is None)


@functools.cache
def _constants(cls) -> dict:
    """Keys the model always writes with a fixed value: discriminators (``"type": "auto"``)."""
    return {k: v for k, v in cls().to_json().items() if k not in _fields(cls)}


def _check(value, hint, path: str) -> list[str]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, object):
        return []
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _check(value, options[0], path)
        if sdk.RowPanel in options and isinstance(value, dict):
            return _check(value, sdk.RowPanel if value.get("type") == "row" else sdk.Panel, path)
        tries = [_check(value, option, path) for option in options]
        return [] if [] in tries else min(tries, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [p for i, v in enumerate(value) for p in _check(v, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        return [p for k, v in value.items() for p in _check(v, args[1], f"{path}.{k}")]
    if hint is variants.Dataquery:
        return _dataquery(value, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [] if value in {m.value for m in hint} else [f"{path}: {value!r} not in {hint}"]
    if _is_model(hint):
        return _model(value, hint, path)
    return _scalar(value, hint, path)


def _scalar(value, hint, path: str) -> list[str]:
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    return [] if ok else [f"{path}: {value!r} is not {getattr(hint, '__name__', hint)}"]


def _model(value, cls, path: str, special: dict | None = None) -> list[str]:
    """A model object; ``special``: key -> checker for keys typed by a plugin, not the model."""
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__}, not a {cls.__name__} object"]
    fields, constants, out = _fields(cls), _constants(cls), []
    if cls is sdk.Panel:
        special = _panel_plugin_checkers(value.get("type", ""))
    if cls is sdk.AnnotationQuery:
        special = _annotation_plugin_checkers((value.get("datasource") or {}).get("type", ""))
    for key, v in value.items():
        where = f"{path}.{key}"
        if key in constants:
            if v != constants[key]:
                out.append(f"{where}: {v!r}, {cls.__name__} has {constants[key]!r}")
        elif special and key in special and key not in fields:
            out += special[key](v, where)
        elif key not in fields:
            out.append(f"{where}: unknown field of {cls.__name__}")
        elif v is None:
            if key not in _nullable(cls):
                out.append(f"{where}: null where {cls.__name__} wants a value")
        elif special and key in special:
            out += special[key](v, where)
        else:
            out += _check(v, fields[key][1], where)
    return out


def _panel_plugin_checkers(panel_type: str) -> dict:
    """Panel ``options`` and ``fieldConfig.defaults.custom`` are typed by the panel plugin."""
    config = runtime.panelcfg_config(panel_type)
    if config is None:
        return {}
    out = {}
    if config.options_from_json_hook is not None:
        options = config.options_from_json_hook.__self__
        out["options"] = lambda v, where: _check(v, options, where)
    if config.field_config_from_json_hook is not None:
        custom = config.field_config_from_json_hook.__self__

        def defaults(v, where):
            return _model(v, sdk.FieldConfig, where, {"custom": lambda c, w: _check(c, custom, w)})

        out["fieldConfig"] = lambda v, where: _model(
            v, sdk.FieldConfigSource, where, {"defaults": defaults}
        )
    return out


# Annotation fields of the Prometheus data source beyond the SDK's AnnotationQuery, read by its
# annotation support (Grafana, packages/grafana-prometheus/src/annotations.ts: prepareAnnotation
# moves a legacy root expr/step into ``target``, processEvents reads these from the root).
PROMETHEUS_ANNOTATION_FIELDS = {"titleFormat": str, "textFormat": str, "tagKeys": str,
                                "useValueForTime": bool}  # fmt: skip


def _annotation_plugin_checkers(plugin: str) -> dict:
    if plugin != "prometheus":
        return {}
    out = {k: (lambda v, where, t=t: _scalar(v, t, where)) for k, t in
           PROMETHEUS_ANNOTATION_FIELDS.items()}  # fmt: skip
    query = runtime.Runtime().dataquery_variants["prometheus"].from_json_hook.__self__
    out["target"] = lambda v, where: _model(v, query, where)  # a query, as the panels' targets
    return out


def _dataquery(value, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__}, not a query object"]
    plugin = (value.get("datasource") or {}).get("type", "")
    config = runtime.Runtime().dataquery_variants.get(plugin)
    if config is None:
        return []  # no model in the SDK: checked against the plugin's own query fields
    return _model(value, config.from_json_hook.__self__, path)
