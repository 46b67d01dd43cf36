"""``groundtruth run``: the eBPF exporter on its own (metrics, and raw events to sinks).

The exporter's composition root (as ``up`` is for the whole process): it wires the probes' runner
to the sinks the config names, store writers included.
"""

from __future__ import annotations

import logging
import signal
import sys

from exporter.config import ConfigError, load_config
from exporter.preflight import preflight_problems

RUN_HELP = """\
Attach the eBPF probes (process lifecycle), scan /proc for processes already running,
self-test the probes with a canary process, then serve Prometheus metrics on --listen and
send every raw event to the sinks. Settings come from defaults, then --config (YAML with the
same names as the flags, underscores for dashes), then GROUNDTRUTH_<NAME> variables, then flags;
the README's settings table lists every setting, those without a flag too (drain_*, ringbuf_pages).
SIGTERM or Ctrl-C drains what the kernel holds, flushes the sinks and exits.
"""


def add_exporter_arguments(p) -> None:
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--listen", help="metrics address HOST:PORT (default 127.0.0.1:9435)")
    p.add_argument("--host", help="host name recorded in every event (default: hostname)")
    p.add_argument(
        "--sink",
        action="append",
        dest="sinks",
        metavar="SPEC",
        help="where raw events go, repeatable: jsonl:- (stdout), jsonl:PATH, "
        "clickhouse://USER:PASS@HOST:PORT/DB, chdb:DIR",
    )
    p.add_argument("--container-label-cap", type=int, help="distinct container labels (200)")
    p.add_argument("--program-label-cap", type=int, help="distinct program labels (200)")
    p.add_argument(
        "--no-selftest",
        dest="selftest",
        action="store_false",
        default=None,
        help="skip the start-up probe self-tests",
    )
    p.add_argument(
        "--no-tcp",
        dest="tcp",
        action="store_false",
        default=None,
        help="do not load the TCP connection probe",
    )
    p.add_argument(
        "--flag-rules", metavar="FILE", help="flag rules file (default: the one shipped)"
    )
    p.add_argument(
        "--no-flags",
        dest="flags",
        action="store_false",
        default=None,
        help="do not run the flag detector",
    )
    p.add_argument(
        "--mixin-config",
        metavar="FILE",
        help="YAML merged over mixin/mixin.yaml (as `alerts build --config`): the flag "
        "detector's flag_* thresholds",
    )
    p.add_argument(
        "--policies",
        metavar="DIR",
        help="baseline policies to flag deviations from (docs/baselines.md); SIGHUP reloads",
    )
    p.add_argument(
        "--netns",
        metavar="PATH",
        help="record only the processes and TCP connections of this network namespace "
        "(/run/netns/NAME, /proc/PID/ns/net): one exporter per namespace, e.g. a lab of "
        "namespaces standing in for hosts, or one container's network",
    )


def config_from_args(args):
    keys = (
        "listen",
        "host",
        "sinks",
        "container_label_cap",
        "program_label_cap",
        "selftest",
        "tcp",
        "flags",
        "flag_rules",
        "mixin_config",
        "policies",
        "netns",
    )
    return load_config(args.config, overrides={k: getattr(args, k) for k in keys})


def reload_policies_on_sighup(exporter) -> None:
    """With --policies, SIGHUP reads the policy directory again (after a merge, say)."""
    if exporter.config.policies and exporter.detector is not None:
        from exporter.flags.setup import reload_policies

        def reload(*_):
            logging.warning(reload_policies(exporter.detector, exporter.config.policies))

        signal.signal(signal.SIGHUP, reload)


def fail(message: str) -> int:
    print(f"groundtruth: error: {message}", file=sys.stderr)
    return 2


def startup_config(args):
    """The exporter's config, once the host can run it; None after saying (one line each)
    what is wrong with the config or the host. Logging is set up on the way."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except ConfigError as e:
        fail(str(e))
        return None
    problems = preflight_problems()
    for problem in problems:
        fail(problem)
    return None if problems else config


def run(args) -> int:
    config = startup_config(args)
    if config is None:
        return 2
    from exporter.metrics_server import bind_metrics
    from exporter.runner import Exporter
    from groundtruth.sinks import make_sink, sink_collectors
    from schema.pipeline_stats import PipelineStats

    stats = PipelineStats()
    try:
        metrics = bind_metrics(config)  # first: nothing has started when the port is taken
    except ConfigError as e:
        return fail(str(e))
    try:
        sink, writers = make_sink(config.sinks, stats)
    except ConfigError as e:
        metrics.close()
        return fail(str(e))
    exporter = Exporter(
        config, sink, stats=stats, collectors=sink_collectors(writers), metrics=metrics
    )
    exporter.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: exporter.stop())
    reload_policies_on_sighup(exporter)
    logging.info("metrics on http://%s/metrics; host %s", config.listen, config.host)
    exporter.run()
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run the eBPF exporter (metrics and raw events)", description=RUN_HELP
    )
    add_exporter_arguments(p)
    p.set_defaults(func=run)
