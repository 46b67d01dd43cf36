"""grafanalib's dashboard JSON in the form current Grafana reads without migrating anything.

grafanalib 0.7.1 writes keys from Grafana 5-7 dashboards (``rows``, ``span``, ``hideControls``,
target ``intervalFactor`` and ``step``, ...) and ``null`` for every unset option. Grafana's
``DashboardMigrator`` (``public/app/features/dashboard/state/DashboardMigrator.ts``,
``DASHBOARD_SCHEMA_VERSION = 42``, "the FINAL version for the v1 dashboard API") ignores some,
migrates others on every load; a ``null`` where the schema wants an object or a string is
neither. ``current_form()`` drops what current Grafana has no use for, writes the table cell
option that replaced ``displayMode`` (schema 38), and removes every ``null`` but the one the
schema wants: a threshold's base step (``value: null``, "from minus infinity").

The lint (``dashboards/lint.py``) checks for the same keys, so a dashboard written another way
cannot bring them back, and ``tests/test_dashboards_sdk.py`` loads the result into Grafana's
own typed models (grafana-foundation-sdk).
"""

from __future__ import annotations

SCHEMA_VERSION = 42

# Keys grafanalib writes that current Grafana no longer reads, by where they sit.
LEGACY_KEYS = {
    "dashboard": {"__inputs", "hideControls", "rows", "sharedCrosshair", "style", "gnetId", "id"},
    "timepicker": {"time_options", "nowDelay"},
    "panel": {
        "cacheTimeout", "height", "span", "minSpan", "maxPerRow", "error", "repeatDirection",
        # Grafana 5-era: only the dashboard's own editable is read (uneditable-dashboard-rule).
        "editable",
        # Angular table options: the React table reads fieldConfig and options instead.
        "columns", "fontSize", "mappings", "color",
        # Chosen on purpose instead (see PROMETHEUS_RESOLUTION): Grafana's default, one point
        # per pixel of the panel's width.
        "maxDataPoints",
    },
    # Prometheus query keys: intervalFactor multiplies the step (legacy, still applied), step
    # and the rest are Grafana 5-era or Graphite keys.
    "target": {"intervalFactor", "step", "metric", "query", "target"},
    "variable": {"tags", "useTags", "tagsQuery", "tagValuesQuery"},
}  # fmt: skip
# grafanalib writes these on every variable; only an interval variable reads them.
INTERVAL_VARIABLE_KEYS = {"auto", "auto_count", "auto_min"}
PROMETHEUS_RESOLUTION = (
    "Prometheus panels set no maxDataPoints (Grafana then asks for one point per pixel of the "
    "panel's width), no intervalFactor (1: a step of the interval itself) and no per-panel "
    "interval: the provisioned data source's scrape interval (timeInterval) is the minimum."
)
# Table fieldConfig.defaults.custom.displayMode -> cellOptions (DashboardMigrator, schema 38).
TABLE_CELL_TYPES = {"auto": {"type": "auto"}}


def current_form(dash: dict) -> dict:
    """``dash`` (grafanalib's JSON) in current Grafana's form; changed in place and returned."""
    _drop(dash, LEGACY_KEYS["dashboard"])
    dash["schemaVersion"] = SCHEMA_VERSION
    _drop(dash.get("timepicker", {}), LEGACY_KEYS["timepicker"])
    for variable in dash.get("templating", {}).get("list", []):
        _drop(variable, legacy_variable_keys(variable))
        (variable.get("current") or {}).pop("tags", None)
        if not (variable.get("current") or {}).get("value"):
            variable.pop("current", None)  # nothing chosen: Grafana picks the first option
    for panel in dash.get("panels", []):
        _drop(panel, LEGACY_KEYS["panel"])
        for target in panel.get("targets", []):
            _drop(target, LEGACY_KEYS["target"])
            if target.get("interval") == "":
                del target["interval"]
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
        if "displayMode" in custom:
            custom["cellOptions"] = TABLE_CELL_TYPES[custom.pop("displayMode")]
    return _without_nulls(dash)


def legacy_variable_keys(variable: dict) -> set[str]:
    """The keys of a template variable that its type does not read."""
    if variable.get("type") == "interval":
        return LEGACY_KEYS["variable"]
    return LEGACY_KEYS["variable"] | INTERVAL_VARIABLE_KEYS


def annotation_expr(annotation: dict) -> str:
    """A Prometheus annotation's query: in ``target`` (current form) or, written the legacy way,
    at the annotation's root."""
    return (annotation.get("target") or {}).get("expr") or annotation.get("expr") or ""


def _drop(obj: dict, keys: set[str]) -> None:
    for key in keys & obj.keys():
        del obj[key]


def _without_nulls(value, key: str = ""):
    if isinstance(value, dict):
        return {
            k: _without_nulls(v, k)
            for k, v in value.items()
            if v is not None or (k == "value" and key == "steps")
        }
    if isinstance(value, list):
        return [_without_nulls(v, key) for v in value]
    return value
