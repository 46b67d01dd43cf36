"""Policy files (read with FILE:LINE errors, written deterministically) and the checks the
exporter runs on them."""

from __future__ import annotations

import pytest

from policy.files import PolicyError, file_name, load_policies, load_policy, render
from policy.model import Endpoint, Policy

POLICY = """\
workload: nginx.service
mode: audit
severity: high
executables:
  /usr/sbin/nginx:  # 3 execs
    parents:
      - systemd  # 3 execs
      - "true"
    users:
      - 0
      - root
  /bin/sh:
listen:
  - 8080  # 2 listens
outbound:
  - {to: 10.0.0.0/8, port: 5432}  # a CIDR
  - {to: 127.0.0.1, port: "*"}
  - {to: "::1", port: 53}
inbound:
  - {from: 192.168.1.7, port: 8080}
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_policy_is_read_and_checked(tmp_path):
    p = load_policy(write(tmp_path, POLICY))
    assert (p.workload, p.mode, p.severity) == ("nginx.service", "audit", "high")
    assert p.exec_deviation("/usr/sbin/nginx", "systemd", 0) is None
    assert p.exec_deviation("/usr/sbin/nginx", "true", 0) is None  # a program named true
    assert p.exec_deviation("/usr/sbin/nginx", "", 0) is None  # parent not known: not checked
    assert p.exec_deviation("/usr/bin/nc", "systemd", 0) == ("exec", "/usr/bin/nc")
    assert p.exec_deviation("/usr/sbin/nginx", "bash", 0) == ("parent", "/usr/sbin/nginx", "bash")
    assert p.exec_deviation("/usr/sbin/nginx", "systemd", 33) == ("user", "/usr/sbin/nginx", 33)
    assert p.exec_deviation("/bin/sh", "", 1000) == ("user", "/bin/sh", 1000)
    assert p.listen_deviation(8080) is None
    assert p.listen_deviation(9090) == ("listen", 9090)
    out = "outbound"
    assert p.endpoint_deviation(out, "10.20.30.40", 5432) is None
    assert p.endpoint_deviation(out, "10.20.30.40", 5433) == (out, "10.20.30.40", 5433)
    assert p.endpoint_deviation(out, "11.0.0.1", 5432) == (out, "11.0.0.1", 5432)
    assert p.endpoint_deviation(out, "127.0.0.1", 1) is None  # any port
    assert p.endpoint_deviation(out, "::1", 53) is None
    assert p.endpoint_deviation("inbound", "192.168.1.7", 8080) is None
    assert p.endpoint_deviation("inbound", "192.168.1.8", 8080) == ("inbound", "192.168.1.8", 8080)
    assert "10.0.0.0/8:5432" in p.expected(("outbound", "1.1.1.1", 1))


def test_written_policies_read_back_the_same_and_keep_comments(tmp_path):
    p = load_policy(write(tmp_path, POLICY))
    text = render(p)
    again = load_policy(write(tmp_path, text, "again.yaml"))
    assert again.entries == p.entries
    assert render(again) == text
    assert "  /usr/sbin/nginx:  # 3 execs\n" in text
    assert '      - "true"\n' in text  # quoted: plain `true` would read as a boolean
    assert "  - {to: 10.0.0.0/8, port: 5432}  # a CIDR\n" in text
    assert '  - {to: 127.0.0.1, port: "*"}\n' in text


def test_entries_are_written_sorted(tmp_path):
    a = Policy("w")
    for key in [("listen", 443), ("listen", 80), ("exec", "/b"), ("exec", "/a"),
                ("outbound", "10.0.0.2", 80), ("outbound", "10.0.0.10", 80)]:  # fmt: skip
        a.add(key)
    b = Policy("w")
    for key in reversed(list(a.entries)):
        b.add(key)
    assert render(a) == render(b)
    text = render(a)
    assert text.index("/a:") < text.index("/b:")
    assert text.index("- 80") < text.index("- 443")
    assert text.index("10.0.0.2,") < text.index("10.0.0.10,")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("workload: w\nlisten: [80]\nports: [1]\n", 3, "unknown key 'ports'"),
        ("workload: w\nlisten: 80\n", 2, "listen must be a list"),
        ("workload: w\nlisten:\n  - 80\n  - http\n", 4, "listen item must be a port"),
        ("workload: w\noutbound:\n  - {to: 10.0.0.1/8, port: 80}\n", 3, "not an address or CIDR"),
        ("workload: w\noutbound:\n  - {to: 10.0.0.0/8}\n", 3, "needs 'to'"),
        ("workload: w\nseverity: urgent\n", 2, "severity must be one of"),
        ("workload: w\nmode: enforce\n", 2, "mode must be one of audit"),
        ("mode: audit\n", 1, "needs 'workload'"),
        ("workload: w\nexecutables:\n  /bin/x:\n    parent: [sh]\n", 4, "unknown key 'parent'"),
        ("workload: w\nexecutables:\n  /bin/x:\n    users: [nosuchuser9]\n", 4, "no user named"),
        ("workload: w\nlisten: [80\n", 3, "not valid YAML"),
    ],
)
def test_a_bad_policy_names_its_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert message in str(e.value)


def test_a_workload_given_twice_names_both_files(tmp_path):
    write(tmp_path, "workload: w\n", "a.yaml")
    write(tmp_path, "workload: w\n", "b.yaml")
    with pytest.raises(
        PolicyError, match=r"b\.yaml:1: workload 'w' already has a policy in .*a\.yaml"
    ):
        load_policies(tmp_path)


def test_file_names_and_endpoints():
    assert file_name("k8s:shop/api/server") == "k8s_shop_api_server.yaml"
    assert file_name("nginx.service") == "nginx.service.yaml"
    assert Endpoint.of("10.1.2.3", 80).text() == "10.1.2.3"
    with pytest.raises(ValueError):
        Endpoint.of("10.1.2.3/8", 80)


def test_the_exporter_config_checks_its_policies(tmp_path):
    from exporter.config import ConfigError, ExporterConfig

    (tmp_path / "a.yaml").write_text("workload: w\nlisten: [80]\n")
    ExporterConfig(policies=str(tmp_path)).validate()
    from exporter.flags.setup import flag_detector

    family = flag_detector(ExporterConfig(policies=str(tmp_path))).policy_family
    assert list(family.policies) == ["w"]
    (tmp_path / "b.yaml").write_text("workload: v\noutbound:\n  - {to: 300.1.1.1, port: 1}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml:3: outbound item: '300\.1\.1\.1' is not"):
        ExporterConfig(policies=str(tmp_path)).validate()
    with pytest.raises(ConfigError, match="--policies needs the flag detector"):
        ExporterConfig(policies=str(tmp_path), flags=False).validate()
    with pytest.raises(ConfigError, match="not a directory of policy files"):
        ExporterConfig(policies=str(tmp_path / "none")).validate()


def test_an_exec_allowed_before_a_reload_is_checked_again_after_it(tmp_path):
    """The policy family remembers the execs a policy allowed: a reload forgets them, so an exec
    the new policy no longer allows is flagged the first time it runs after the reload."""
    from exporter.flags.detector import load_detector
    from exporter.flags.policies import PolicyFamily
    from schema.events import ProcessEvent

    detector = load_detector()
    family = PolicyFamily({"nginx.service": load_policy(write(tmp_path, POLICY))}, detector)
    detector.add_family(family)

    def nginx_exec(n: int) -> ProcessEvent:
        return ProcessEvent(
            event_id=f"e{n}", kind="exec", time_ns=n, host="h", pid=100 + n,
            process_key=f"h:{100 + n}:1", filename="/usr/sbin/nginx", uid=0,
            workload="nginx.service",
        )  # fmt: skip

    assert detector.observe([nginx_exec(1), nginx_exec(2)]) == []  # allowed, then remembered
    www_data_only = POLICY.replace("      - 0\n      - root\n", "      - 33\n")  # uid 33 alone
    family.reload({"nginx.service": load_policy(write(tmp_path, www_data_only))})
    flags = [f for f in detector.observe([nginx_exec(3)]) if f.kind == "policy"]
    assert [(f.rule_id, f.process_key) for f in flags] == [("policy_user", "h:103:1")]


def test_a_deviating_connection_is_counted_once_and_flagged_once_per_process(tmp_path):
    """Each connection outside the policy is one occurrence: a short one has only its close
    event, a long one its open (the TCP probe's sweep) and its close, counted at the open. Two
    processes making the same deviation get a flag each; a loop in one process gets one."""
    from exporter.flags.detector import load_detector
    from exporter.flags.policies import PolicyFamily
    from schema.events import ConnectionEvent

    detector = load_detector()
    family = PolicyFamily({"nginx.service": load_policy(write(tmp_path, POLICY))}, detector)
    detector.add_family(family)

    def to_redis(kind: str, conn_id: str, pid: int = 7) -> ConnectionEvent:
        return ConnectionEvent(
            event_id=f"{conn_id}-{kind}", kind=kind, time_ns=1, host="h", connection_id=conn_id,
            pid=pid, process_key=f"h:{pid}:1", direction="outbound", family="ipv4",
            local_addr="10.0.0.1", local_port=40000, remote_addr="10.9.9.9", remote_port=6379,
            outcome="ok", workload="nginx.service",
        )  # fmt: skip

    long_lived = [to_redis("open", "c0"), to_redis("close", "c0")]
    loop = [to_redis("close", f"c{n}") for n in range(1, 5)]  # four short connections
    other_process = [to_redis("close", "c9", pid=8)]
    flags = detector.observe(long_lived + loop + other_process)
    assert [(f.rule_id, f.process_key, f.connection_id) for f in flags] == [
        ("policy_outbound", "h:7:1", "c0"),
        ("policy_outbound", "h:8:1", "c9"),
    ]
    assert family.deviations["nginx.service", "outbound"] == 1 + 4 + 1
