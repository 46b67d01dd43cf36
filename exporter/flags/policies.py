"""Baseline policies, live: the detector's family that flags what a workload's policy does not
allow (docs/baselines.md).

Called by the detector on every exec, listen and connection (``Detector.add_family``). An event
of a workload without a policy costs one dict lookup; one with a policy a few set lookups
(``policy.model.Policy``'s precomputed sets). Each distinct deviation is stored once per process
as a ``policy`` flag (rule ``policy_<kind>``, severity from the policy) and counted every time,
by policy (its workload) and kind: ``groundtruth_policy_deviations_total``. A connection is
counted once: at its close, or at its ``open`` event when it lived long enough to get one (its
close is then the same occurrence).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.flags.ancestry import NOT_KNOWN, PROGRAM
from exporter.flags.flag_about import flag_about
from policy.model import KINDS, Policy, describe
from schema.events import in_cwd

FLAGGED_MAX = 65536  # (process, deviation) pairs remembered; past it, forgotten all at once
ALLOWED_MAX = 4096  # execs remembered as allowed, per workload; past it, forgotten all at once
OPEN_COUNTED_MAX = 65536  # deviating connections counted at their open event, not closed yet
FLAG_CLASS = "security"


def rule_id(kind: str) -> str:
    return f"policy_{kind}"


class PolicyFamily:
    def __init__(self, policies: dict[str, Policy], detector):
        self.policies = {w: p for w, p in policies.items() if p.mode == "audit"}
        self.detector = detector
        self.ancestry = detector.ancestry
        self._procs = detector.ancestry.procs
        self._allowed: dict[str, set[tuple]] = {}  # workload -> execs its policy allowed
        self.deviations: Counter = Counter()  # (workload, kind) -> every occurrence
        self._flagged: set[tuple] = set()
        self._open_counted: set[str] = set()  # connection ids counted at their open event
        self._run_id = os.urandom(4).hex()
        self._seq = itertools.count()

    def reload(self, policies: dict[str, Policy]) -> None:
        """New policies (SIGHUP): swapped in at once, so a batch sees the old or the new ones;
        the counts and the deviations already flagged are kept."""
        self.policies = {w: p for w, p in policies.items() if p.mode == "audit"}
        self._allowed = {}

    def on_exec(self, ev, program: str) -> None:
        policy = self.policies.get(ev.workload)
        if policy is not None:
            parent = self._procs.get(ev.parent_key, NOT_KNOWN)[PROGRAM]  # Ancestry.program()
            # An exec the policy allowed before is allowed again: one set lookup (a service's
            # execs repeat), instead of the policy's three.
            allowed = self._allowed.get(ev.workload)
            if allowed is None:
                allowed = self._allowed[ev.workload] = set()
            # ./tool is the tool of the directory it ran in: by its name alone, a policy would
            # allow a file of that name run from anywhere.
            path = in_cwd(ev.filename, ev.cwd)
            seen = (path, parent, ev.uid)
            if seen in allowed:
                return
            found = policy.exec_deviation(path, parent, ev.uid)
            if found is not None:
                self._deviation(policy, found, ev, program, ev.parent_key)
            else:
                if len(allowed) >= ALLOWED_MAX:
                    allowed.clear()
                allowed.add(seen)

    def on_listen(self, ev) -> None:
        policy = self.policies.get(ev.workload)
        if policy is not None and ev.kind == "listen":
            found = policy.listen_deviation(ev.local_port)
            if found is not None:
                self._deviation(policy, found, ev)

    def on_connection(self, ev) -> None:
        policy = self.policies.get(ev.workload)
        if policy is None or ev.kind == "scan":
            return
        if ev.direction == "outbound":
            found = policy.endpoint_deviation("outbound", ev.remote_addr, ev.remote_port)
        elif ev.direction == "inbound":
            found = policy.endpoint_deviation("inbound", ev.remote_addr, ev.local_port)
        else:
            return
        if found is not None:
            connection_id = ev.connection_id
            if connection_id and ev.kind == "open":
                if len(self._open_counted) >= OPEN_COUNTED_MAX:
                    self._open_counted.clear()
                self._open_counted.add(connection_id)
            elif connection_id in self._open_counted:  # its close: counted at the open
                self._open_counted.discard(connection_id)
                return
            self._deviation(policy, found, ev, connection_id=connection_id)

    def _deviation(self, policy, found, ev, program="", parent_key=None, connection_id=""):
        kind = found[0]
        self.deviations[policy.workload, kind] += 1
        flag_key = (ev.process_key, found)
        stored = flag_key not in self._flagged
        if stored:
            if len(self._flagged) >= FLAGGED_MAX:
                self._flagged.clear()
            self._flagged.add(flag_key)
        if parent_key is None:
            parent_key = self.ancestry.parent(ev.process_key)
        program = program or self.ancestry.program(ev.process_key) or ev.comm
        where = f" ({policy.path})" if policy.path else ""
        flag = flag_about(
            ev,
            event_id=f"{self._run_id}-p{next(self._seq)}",
            kind="policy",
            time_ns=self.detector.clock(),
            rule_id=rule_id(kind),
            flag_class=FLAG_CLASS,
            severity=policy.severity,
            description=f"{describe(found)}: not in the policy of workload "
            f"{policy.workload}{where}; it allows {policy.expected(found)}",
            program=program,
            parent_key=parent_key,
            connection_id=connection_id,
            workload=policy.workload,
        )
        self.detector.add_flag(flag, stored)


class PolicyCollector(Collector):
    """Prometheus: deviations by policy and kind (bounded: the policies loaded, six kinds)."""

    def __init__(self, family: PolicyFamily):
        self.family = family

    def describe(self):
        for metric in self.collect():
            metric.samples = []
            yield metric

    def collect(self):
        deviations = CounterMetricFamily(
            "groundtruth_policy_deviations",
            "Events outside their workload's baseline policy, by policy (workload) and kind "
            "(exec, parent, user, listen, outbound, inbound); each counted, stored once per "
            "process.",
            labels=["policy", "kind"],
        )
        for workload in sorted(self.family.policies):
            for kind in KINDS:
                deviations.add_metric([workload, kind], self.family.deviations[workload, kind])
        yield deviations
        yield GaugeMetricFamily(
            "groundtruth_exporter_policies",
            "Baseline policies the flag detector checks (mode audit).",
            value=len(self.family.policies),
        )
