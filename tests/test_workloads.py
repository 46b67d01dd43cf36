"""Workload identity: the decoders, the runtimes' inspect APIs on a real unix socket, and the
resolver on real cgroup directories."""

from __future__ import annotations

import pytest

from exporter.containers import (
    HOST,
    NO_CONTAINER,
    ContainerResolver,
    identify,
    identify_proc_cgroup,
)
from exporter.workloads import (
    RuntimeNames,
    image_repository,
    pod_workload,
    service_unit,
    workload_from_inspect,
)
from tests.cgroups import cgroup_dirs, docker_scope_v2, fake_container_id, random_service_unit
from tests.cgroups import service_v2 as service_cgroup
from tests.runtime_api import runtime_api

ID = "ab" * 32
POD = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.mark.parametrize(
    "path, unit",
    [
        ("/system.slice/nginx.service", "nginx.service"),
        ("/system.slice/nginx.service/worker", "nginx.service"),
        ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service"),
        ("/user.slice/user-0.slice/session-1.scope", ""),
        (f"/system.slice/docker-{ID}.scope", ""),
        ("/system.slice/not.service.d", ""),
        ("/", ""),
    ],
)
def test_service_unit(path, unit):
    assert service_unit(path) == unit


@pytest.mark.parametrize(
    "image, repository",
    [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("registry:5000/team/app:1.2", "registry:5000/team/app"),
        ("registry:5000/team/app", "registry:5000/team/app"),
        ("docker.io/library/redis:7@sha256:" + "0" * 64, "docker.io/library/redis"),
    ],
)
def test_image_repository(image, repository):
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    "pod, labels, workload",
    [
        ("web-7d9f8b6c5d-x2kqz", {}, "web"),  # a Deployment's pod
        ("agent-xk2dz", {}, "agent"),  # a DaemonSet's
        ("db-0", {}, "db"),  # a StatefulSet's
        ("standalone", {}, "standalone"),
        ("web-7d9f8b6c5d-x2kqz", {"app.kubernetes.io/name": "shop"}, "shop"),
        ("web-7d9f8b6c5d-x2kqz", {"app": "legacy"}, "legacy"),
    ],
)
def test_pod_workload(pod, labels, workload):
    assert pod_workload(pod, labels) == workload


def test_workload_from_inspect():
    labels = {
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.name": "api-6c8f7b9d4-q8wzt",
        "io.kubernetes.container.name": "server",
    }
    assert workload_from_inspect("ghcr.io/x/api:3", labels) == "k8s:shop/api/server"
    assert workload_from_inspect("nginx:1.25", {}) == "image:nginx"
    assert workload_from_inspect("", {}) == ""


@pytest.mark.parametrize(
    "path, workload",
    [
        (f"/system.slice/docker-{ID}.scope", "container:abababababab"),
        ("/system.slice/nginx.service", "nginx.service"),
        ("/user.slice/user-0.slice/session-1.scope", "host"),
        ("/", "host"),
        (f"/kubepods/besteffort/pod{POD}", ""),  # a pod, above its containers: not knowable
    ],
)
def test_identify_without_a_runtime(path, workload):
    assert identify(path).workload == workload


def test_proc_cgroup_prefers_a_container_then_a_service_then_host():
    # A hybrid host: the unit is named only by the v1 name=systemd line.
    assert identify_proc_cgroup("1:name=systemd:/system.slice/cron.service\n0::/\n").workload == (
        "cron.service"
    )
    docker = f"4:memory:/docker/{ID}\n1:name=systemd:/system.slice/cron.service\n0::/\n"
    assert identify_proc_cgroup(docker).workload == "container:abababababab"
    assert identify_proc_cgroup("0::/\n") is HOST
    assert identify_proc_cgroup("") is NO_CONTAINER


# The runtimes' documented inspect answers (trimmed to the fields read, plus some others).
DOCKER_INSPECT = {  # Docker Engine API: GET /containers/{id}/json
    "Id": ID,
    "Name": "/shop-web-1",
    "Image": "sha256:" + "1" * 64,
    "State": {"Status": "running", "Pid": 4242},
    "Config": {"Image": "nginx:1.25", "Labels": {"com.docker.compose.service": "web"}},
}
DOCKER_K8S_INSPECT = {  # a pod's container under cri-dockerd: the kubelet's labels
    "Id": ID,
    "Name": "/k8s_server_api-6c8f7b9d4-q8wzt_shop_" + POD + "_0",
    "Config": {
        "Image": "ghcr.io/x/api:3",
        "Labels": {
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.name": "api-6c8f7b9d4-q8wzt",
            "io.kubernetes.pod.uid": POD,
            "io.kubernetes.container.name": "server",
        },
    },
}
CRIO_INSPECT = {  # CRI-O: GET /containers/{id} on crio.sock
    "name": "k8s_server_api-6c8f7b9d4-q8wzt_shop_" + POD + "_0",
    "pid": 4242,
    "image": "ghcr.io/x/api:3",
    "image_ref": "ghcr.io/x/api@sha256:" + "2" * 64,
    "created_time": 1700000000000000000,
    "labels": {
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.name": "api-6c8f7b9d4-q8wzt",
        "io.kubernetes.container.name": "server",
    },
    "annotations": {},
    "sandbox": "3" * 64,
}


@pytest.mark.parametrize(
    "runtime, url, answer, workload",
    [
        ("docker", f"/containers/{ID}/json", DOCKER_INSPECT, "image:nginx"),
        ("docker", f"/containers/{ID}/json", DOCKER_K8S_INSPECT, "k8s:shop/api/server"),
        ("podman", f"/containers/{ID}/json", DOCKER_INSPECT, "image:nginx"),
        ("crio", f"/containers/{ID}", CRIO_INSPECT, "k8s:shop/api/server"),
    ],
)
def test_runtime_is_asked_once_per_container(tmp_path, runtime, url, answer, workload):
    sock = tmp_path / f"{runtime}.sock"
    with runtime_api(sock, {url: answer}) as asked:
        names = RuntimeNames({runtime: str(sock)})
        assert names.workload(ID, runtime) == workload
        assert names.workload(ID, runtime) == workload  # cached: not asked again
        assert asked == [url]
        other = "cd" * 32  # a container the runtime does not know (404): its id
        assert names.workload(other, runtime) == "container:cdcdcdcdcdcd"
        assert names.lookups == 2


def test_a_runtime_that_is_not_there_leaves_the_container_id(tmp_path):
    names = RuntimeNames({"docker": str(tmp_path / "absent.sock")})
    assert names.workload(ID, "docker") == "container:abababababab"
    assert names.workload(ID, "containerd") == "container:abababababab"  # cached by id
    assert RuntimeNames({}).workload("ef" * 32, "containerd") == "container:efefefefefef"


def test_resolver_names_real_cgroups_and_asks_the_runtime_once(tmp_path):
    """Real cgroup v2 directories: a service unit, and a Docker container whose runtime (a real
    unix socket with Docker's answer) names its image; rescans do not ask again."""
    cid, unit = fake_container_id(), random_service_unit()
    sock = tmp_path / "docker.sock"
    url = f"/containers/{cid}/json"
    with (
        runtime_api(sock, {url: DOCKER_INSPECT}) as asked,
        cgroup_dirs(docker_scope_v2(cid), service_cgroup(unit)) as (scope, service),
    ):
        resolver = ContainerResolver(names=RuntimeNames({"docker": str(sock)}))
        container = resolver.resolve(scope.stat().st_ino)
        assert (container.id, container.workload) == (cid, "image:nginx")
        assert resolver.resolve(service.stat().st_ino).workload == unit
        resolver.rescan()
        resolver.learn(scope.stat().st_ino, f"/system.slice/docker-{cid}.scope")
        # Other containers' cgroups on the host (other suites') are asked about too: once each.
        assert [u for u in asked if cid in u] == [url]
        assert resolver.resolve(1).workload == "host"  # the root cgroup
