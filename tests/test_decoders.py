"""Table-driven tests of the small decoders: cgroup paths, exit status, /proc parsing, config."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, load_config
from exporter.containers import NO_CONTAINER, Container, container_from_path
from exporter.containers import container_from_proc_cgroup as from_proc
from exporter.labels import OTHER, BoundedLabels
from exporter.probes.process import decode_exit_status, exit_outcome
from exporter.proc_scan import cap_argv, parse_stat

ID = "a" * 64
POD = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.mark.parametrize(
    "path, expected",
    [
        (f"/system.slice/docker-{ID}.scope", Container(ID, "docker")),
        (f"/docker/{ID}", Container(ID, "docker")),
        (f"/docker/{ID}/sub", Container(ID, "docker")),
        (f"/system.slice/cri-containerd-{ID}.scope", Container(ID, "containerd")),
        (f"/machine.slice/libpod-{ID}.scope", Container(ID, "podman")),
        (f"/machine.slice/libpod-conmon-{ID}.scope", Container(ID, "podman")),
        (f"/system.slice/crio-{ID}.scope", Container(ID, "crio")),
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
            Container(ID, "containerd", POD),
        ),
        (f"/kubepods/besteffort/pod{POD}/{ID}", Container(ID, "containerd", POD)),
        (f"/kubepods/besteffort/pod{POD}", Container("", "kubernetes", POD)),
        ("/user.slice/user-0.slice/session-1.scope", NO_CONTAINER),
        ("/", NO_CONTAINER),
        (f"/docker-{ID[:60]}.scope", NO_CONTAINER),  # too short to be an id
    ],
)
def test_container_from_path(path, expected):
    assert container_from_path(path) == expected


def test_container_from_v1_lines_of_proc_cgroup():
    text = f"12:memory:/docker/{ID}\n4:cpu:/docker/{ID}\n0::/\n"
    assert from_proc(text) == Container(ID, "docker")
    assert from_proc("0::/init.scope\n") == NO_CONTAINER


@pytest.mark.parametrize(
    "raw, expected",
    [
        (0, (0, 0, 0)),
        (7 << 8, (7, 0, 0)),
        (255 << 8, (255, 0, 0)),
        (9, (-1, 9, 0)),
        (11 | 0x80, (-1, 11, 1)),
    ],
)
def test_decode_exit_status(raw, expected):
    assert decode_exit_status(raw) == expected


@pytest.mark.parametrize(
    "code, sig, oom, expected",
    [(0, 0, False, "ok"), (3, 0, False, "error"), (-1, 15, False, "signal"), (-1, 9, True, "oom")],
)
def test_exit_outcome(code, sig, oom, expected):
    assert exit_outcome(code, sig, oom) == expected


def test_parse_stat_with_a_hostile_comm():
    line = "42 (a) b (c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"
    assert parse_stat(line) == ("a) b (c", 7, 12345)


def test_cap_argv_matches_the_probe_limits():
    assert cap_argv(["a"] * 20) == (["a"] * 20, 0)
    assert cap_argv(["a"] * 21) == (["a"] * 20, 1)
    assert cap_argv(["x" * 127]) == (["x" * 127], 0)
    assert cap_argv(["x" * 128]) == (["x" * 127], 1)


def test_bounded_labels_are_sticky_and_capped():
    labels = BoundedLabels(2)
    assert [labels(v) for v in ("a", "b", "c", "a", "c")] == ["a", "b", OTHER, "a", OTHER]


def test_config_layers_flags_over_env_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("listen: 127.0.0.1:1000\nhost: from-file\nprogram_label_cap: 5\n")
    env = {"GROUNDTRUTH_HOST": "from-env", "GROUNDTRUTH_PROGRAM_LABEL_CAP": "7"}
    config = load_config(str(path), env=env, overrides={"host": "from-flag", "listen": None})
    assert (config.listen, config.host, config.program_label_cap) == (
        "127.0.0.1:1000",
        "from-flag",
        7,
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("nonsense_key: 1\n", "unknown setting 'nonsense_key'"),
        ("listen: nowhere\n", "is not HOST:PORT"),
        ("program_label_cap: many\n", "is not a valid int"),
        ("ringbuf_pages: 1000\n", "power of two"),
        ("drain_fill_fraction: 0\n", "drain_fill_fraction must be above 0 and at most 1"),
        ("drain_fill_fraction: 1.5\n", "drain_fill_fraction must be above 0 and at most 1"),
        ("drain_max_delay_seconds: -1\n", "drain_max_delay_seconds must be between 0 and 5"),
        ("sinks: [ftp://x]\n", "unknown sink"),
        ("- a list\n", "must hold a mapping"),
    ],
)
def test_bad_config_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env={})
