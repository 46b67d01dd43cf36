"""Workload identity: the stable name a baseline policy is kept under (issue 18).

A container id or a pid changes on every deploy; a workload does not. In order:

- a container: what its runtime says about it, asked once per container on the runtime's own
  socket (``RuntimeNames``): a Kubernetes pod's namespace, workload and container name from the
  runtime's ``io.kubernetes.*`` labels (``k8s:NAMESPACE/WORKLOAD/CONTAINER``), else its image
  without tag or digest (``image:REPOSITORY``); when no runtime answers, its id
  (``container:ID12``);
- a systemd service: its unit, from the cgroup path (``nginx.service``);
- a process in a login session (its login uid set): ``session:PROGRAM``, the program of the
  session's first process (exporter/sessions.py);
- anything else on the host: ``host``.

A process whose cgroup could not be resolved has no workload (''): never guessed.
"""

from __future__ import annotations

import http.client
import json
import re
import socket

HOST_WORKLOAD = "host"
_UNIT = re.compile(r"(?:^|/)([^/]+\.service)(?=/|$)")
# Kubernetes' generated name suffixes (k8s.io/apimachinery rand.SafeEncodeString's alphabet):
# a Deployment's pod is NAME-<pod-template-hash>-<5>, a DaemonSet's or Job's NAME-<5>, a
# StatefulSet's NAME-<ordinal>.
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED = re.compile(
    rf"-(?:[{_K8S_ALPHABET}]{{6,10}}-[{_K8S_ALPHABET}]{{5}}|[{_K8S_ALPHABET}]{{5}}|[0-9]+)$"
)
# Runtime -> its socket that answers container inspection over HTTP (containerd speaks only
# gRPC: its containers keep their id).
DEFAULT_SOCKETS = {
    "docker": "/var/run/docker.sock",
    "podman": "/run/podman/podman.sock",
    "crio": "/var/run/crio/crio.sock",
}
LOOKUP_TIMEOUT_SECONDS = 0.5
NAMES_MAX = 4096


def service_unit(cgroup_path: str) -> str:
    """The systemd service a cgroup path is in (the innermost ``*.service``), or ''."""
    units = _UNIT.findall(cgroup_path)
    return units[-1] if units else ""


def container_workload(container_id: str) -> str:
    """A container's workload when its runtime does not say more."""
    return f"container:{container_id[:12]}"


def image_repository(image: str) -> str:
    """``registry:5000/team/app`` from ``registry:5000/team/app:1.2@sha256:...``."""
    image = image.partition("@")[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def pod_workload(pod_name: str, labels: dict) -> str:
    """The workload a pod belongs to: its app label, else its name less the generated suffix."""
    return (
        labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or _GENERATED.sub("", pod_name)
        or pod_name
    )


def workload_from_inspect(image: str, labels: dict) -> str:
    """A container's workload from its runtime's answer (image and labels), or ''."""
    namespace = labels.get("io.kubernetes.pod.namespace", "")
    pod = labels.get("io.kubernetes.pod.name", "")
    if namespace and pod:
        name = labels.get("io.kubernetes.container.name", "")
        return f"k8s:{namespace}/{pod_workload(pod, labels)}" + (f"/{name}" if name else "")
    repository = image_repository(image or "")
    return f"image:{repository}" if repository else ""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _get_json(socket_path: str, url: str, timeout: float) -> dict | None:
    """GET url on a unix socket: the JSON object answered with 200, else None."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        found = json.loads(body)
        return found if isinstance(found, dict) else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def _docker_answer(found: dict) -> tuple[str, dict]:
    """(image, labels) of a Docker Engine API (and Podman's compatible API) inspect answer:
    ``GET /containers/{id}/json``."""
    config = found.get("Config") or {}
    return str(config.get("Image") or found.get("Image") or ""), config.get("Labels") or {}


def _crio_answer(found: dict) -> tuple[str, dict]:
    """(image, labels) of CRI-O's inspect answer: ``GET /containers/{id}``."""
    return str(found.get("image") or ""), found.get("labels") or {}


_ASKS = {
    "docker": ("/containers/{id}/json", _docker_answer),
    "podman": ("/containers/{id}/json", _docker_answer),
    "crio": ("/containers/{id}", _crio_answer),
}


class RuntimeNames:
    """Container id -> workload, asked once per container of its runtime's socket and cached.

    Called when a container is discovered (its cgroup made, or found by a rescan), never per
    event; a runtime that is not there answers at once (no socket), one that hangs within
    ``timeout`` seconds. A container its runtime cannot name keeps its id.
    """

    def __init__(self, sockets: dict[str, str] | None = None, timeout=LOOKUP_TIMEOUT_SECONDS):
        self.sockets = DEFAULT_SOCKETS if sockets is None else sockets
        self.timeout = timeout
        self.lookups = 0  # questions asked of a runtime
        self._names: dict[str, str] = {}

    def workload(self, container_id: str, runtime: str) -> str:
        found = self._names.get(container_id)
        if found is None:
            if len(self._names) >= NAMES_MAX:
                self._names.clear()
            found = self._names[container_id] = self._ask(
                container_id, runtime
            ) or container_workload(container_id)
        return found

    def _ask(self, container_id: str, runtime: str) -> str:
        path, ask = self.sockets.get(runtime), _ASKS.get(runtime)
        if not path or ask is None:
            return ""
        self.lookups += 1
        answer = _get_json(path, ask[0].format(id=container_id), self.timeout)
        return workload_from_inspect(*ask[1](answer)) if answer else ""
