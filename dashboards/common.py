"""Building blocks every groundtruth dashboard shares: data sources, variables, panels, links.

Panels here take their unit and description as required arguments: a panel without them does
not build. Thresholds come from the mixin config, so a threshold line on a dashboard is the
alert's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafanalib.core import (
    REFRESH_ON_TIME_RANGE_CHANGE,
    Annotations,
    Dashboard,
    DashboardLink,
    GridPos,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from mixin.config import MixinConfig
from mixin.recording import INVESTIGATION_SLUG, INVESTIGATION_UID

# Grafana unit ids.
PERCENT = "percentunit"
BYTES = "bytes"
SECONDS = "s"
PER_SECOND = "cps"  # counts per second
CORES = "short"  # CPU seconds per second: cores busy
COUNT = "short"
NONE = "none"

PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "${clickhouse}"}
INFINITY = {"type": "yesoreyeram-infinity-datasource", "uid": "${graphapi}"}
# The plugin versions the dashboards are written for: the ones docker-compose.yml installs
# (tests/test_compose.py keeps them equal; docs/compose.md shows each one exists).
PLUGIN_VERSIONS = {
    "grafana-clickhouse-datasource": "4.20.0",
    "yesoreyeram-infinity-datasource": "3.11.1",
}

TAG = "groundtruth"
ALL = "__all__"  # the "All" value of single-valued ClickHouse-side filters
GRAPH_LINK_WINDOW_MS = 30 * 60 * 1000  # a data link opens the graph 15 minutes either side


def datasource_variable(name: str, label: str, plugin: str, default_uid: str) -> Template:
    return Template(
        name=name,
        label=label,
        type="datasource",
        query=plugin,
        default=default_uid,
        refresh=REFRESH_ON_TIME_RANGE_CHANGE,
    )


def prometheus_variable(cfg: MixinConfig) -> Template:
    return datasource_variable(
        "datasource", "Prometheus", "prometheus", cfg.datasources["prometheus"]
    )


def label_variable(
    name: str,
    label: str,
    query: str,
    multi: bool = True,
    all_value: str | None = ".+",
) -> Template:
    """A Prometheus label's values; ``all_value=None``: no "All" option."""
    return Template(
        name=name,
        label=label,
        query=f"label_values({query}, {name})",
        dataSource=PROMETHEUS,
        multi=multi,
        includeAll=all_value is not None,
        allValue=all_value,
        default="$__all" if all_value is not None else None,
        refresh=REFRESH_ON_TIME_RANGE_CHANGE,
    )


def job_variable(cfg: MixinConfig) -> Template:
    # Offers only the jobs the mixin's exporter selector admits.
    return label_variable("job", "Job", f"groundtruth_exporter_build_info{cfg.selector()}")


def host_variable(cfg: MixinConfig, multi: bool = True) -> Template:
    return label_variable(
        cfg.host_label,
        "Host",
        'groundtruth_exporter_build_info{job=~"$job"}',
        multi=multi,
        all_value=".+" if multi else None,
    )


def container_variable(cfg: MixinConfig, multi: bool = True, all_value: str = ".*") -> Template:
    # ".*" keeps container="" (processes outside any container) in "All".
    return label_variable(
        "container",
        "Container",
        f"groundtruth_container_memory_bytes{{{host_matchers(cfg)}}}",
        multi=multi,
        all_value=all_value,
    )


def host_matchers(cfg: MixinConfig) -> str:
    """The job and host matchers every Prometheus panel query carries."""
    return f'job=~"$job",{cfg.host_label}=~"${cfg.host_label}"'


def sel(cfg: MixinConfig, *extra: str) -> str:
    """``{job=~"$job",instance=~"$instance",...}``."""
    return "{" + ",".join([host_matchers(cfg), *extra]) + "}"


def legend(*labels: str) -> str:
    """A legend naming the series by these labels: ``{{instance}} {{program}}``."""
    return " ".join("{{" + label + "}}" for label in labels)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=PROMETHEUS, instant=instant)


def steps(*levels: tuple[str, float]) -> list[dict]:
    """Threshold steps: green below the first level, then each colour from its value on."""
    return [{"color": "green", "value": None}] + [{"color": c, "value": v} for c, v in levels]


def encoded(expression: str) -> str:
    """``${expression:percentencode}``: a value put into a URL. Grafana's data links on the
    Node Graph (Explore's ``useLinks``) interpolate with no default encoding and panels with
    ``encodeURI``, which keeps ``#`` (cuts the URL) and ``+`` (read back as a space);
    ``percentencode`` is ``encodeURIComponent`` plus ``!'()*`` (Grafana's formatRegistry)."""
    return "${" + expression + ":percentencode}"


def investigation_link(title: str, variables: dict[str, str], time: str) -> dict:
    """A data link to the investigation dashboard, in the same tab: ``variables`` maps each
    dashboard variable to the Grafana expression of its value; ``time`` is the URL's time part
    (``${__url_time_range}`` or ``time=...``)."""
    params = "&".join(f"var-{name}={encoded(expr)}" for name, expr in variables.items())
    return {
        "title": title,
        "url": f"/d/{INVESTIGATION_UID}/{INVESTIGATION_SLUG}?{params}&{time}",
        "targetBlank": False,
    }


def graph_link(cfg: MixinConfig, with_container: bool = False) -> dict:
    """A data link: the causal graph of the clicked series' host (and container), centred on
    the clicked time (Grafana's ``time`` and ``time.window`` URL parameters, in ms)."""
    variables = {cfg.host_label: f"__field.labels.{cfg.host_label}"}
    if with_container:
        variables["container"] = "__field.labels.container"
    return investigation_link(
        "Causal graph of this host around this time",
        variables,
        f"time=${{__value.time}}&time.window={GRAPH_LINK_WINDOW_MS}",
    )


def timeseries(
    title: str,
    description: str,
    targets: list[Target],
    unit: str,
    grid: tuple[int, int, int, int],
    thresholds: list[dict] | None = None,
    links: list[dict] | None = None,
    stacked: bool = False,
) -> TimeSeries:
    x, y, w, h = grid
    extra = {"fieldConfig": {"defaults": {"links": links}}} if links else None
    return TimeSeries(
        title=title,
        description=description,
        dataSource=PROMETHEUS,
        targets=targets,
        unit=unit,
        gridPos=GridPos(h=h, w=w, x=x, y=y),
        thresholds=thresholds or steps(),
        thresholdsStyleMode="line" if thresholds else "off",
        stacking={"mode": "normal", "group": "A"} if stacked else {},
        fillOpacity=20 if stacked else 0,
        editable=False,
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        extraJson=extra,
    )


def stat(
    title: str,
    description: str,
    targets: list[Target],
    unit: str,
    grid: tuple[int, int, int, int],
    thresholds: list[dict] | None = None,
    mappings: list | None = None,
) -> Stat:
    x, y, w, h = grid
    return Stat(
        title=title,
        description=description,
        dataSource=PROMETHEUS,
        targets=targets,
        format=unit,
        gridPos=GridPos(h=h, w=w, x=x, y=y),
        thresholds=thresholds or steps(),
        reduceCalc="lastNotNull",
        colorMode="background",
        graphMode="none",
        mappings=mappings or [],
        editable=False,
    )


def dashboard_links() -> list[DashboardLink]:
    """Every groundtruth dashboard links to the others, keeping time range and variables."""
    return [
        DashboardLink(
            title="groundtruth",
            type="dashboards",
            tags=[TAG],
            asDropdown=True,
            includeVars=True,
            keepTime=True,
        )
    ]


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list,
    variables: list[Template],
    annotations: Sequence[dict] = (),
) -> Dashboard:
    return Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=[TAG],
        panels=panels,
        templating=Templating(list=variables),
        annotations=Annotations(list=list(annotations)),
        links=dashboard_links(),
        editable=False,
        graphTooltip=1,
        time=Time("now-1h", "now"),
        refresh="30s",
        timezone="browser",
    ).auto_panel_ids()
