"""``groundtruth up``: the exporter and the graph API in one process, on the embedded store.

chDB lets only one process open a data directory, so the exporter's store writer and the
graph API live in one process here, each with its own connection (their queries do not wait
for each other). This is what ``make run`` starts.
"""

from __future__ import annotations

import signal
import sys
import threading

from exporter.config import ConfigError
from graphapi.cli import add_grafana_argument
from groundtruth.run import (
    add_exporter_arguments,
    fail,
    reload_policies_on_sighup,
    startup_config,
)

HELP = """\
Run the eBPF exporter and the graph API together on the embedded store (chDB in --data-dir):
every raw event is written there, the graph API serves the causal graph, timelines and the
Alertmanager webhook from it, and Prometheus metrics are on --listen. Ctrl-C or SIGTERM stops
both: the kernel's queued events are drained and written before it exits.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "up", help="exporter + graph API on the embedded store (make run)", description=HELP
    )
    add_exporter_arguments(p)
    p.add_argument("--data-dir", help="chDB data directory (/var/lib/groundtruth/chdb)")
    p.add_argument(
        "--graphapi-listen", default="127.0.0.1:8080", help="graph API HOST:PORT (127.0.0.1:8080)"
    )
    p.add_argument("--token-file", help="bearer token file for the graph API")
    add_grafana_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    config = startup_config(args)
    if config is None:
        return 2

    from exporter.metrics_server import bind_metrics
    from exporter.runner import Exporter
    from exporter.sinks import FanoutSink
    from graphapi import create_app
    from graphapi.cli import read_token, split_listen
    from graphapi.server import InsecureListen, make_server
    from groundtruth.sinks import make_sink, sink_collectors
    from schema.pipeline_stats import PipelineStats
    from store.db import DEFAULT_DATA_DIR, open_store
    from store.migrations import migrate
    from store.sink import default_spool_dir
    from store.writer import StoreWriter

    data_dir = args.data_dir or DEFAULT_DATA_DIR
    stats = PipelineStats()
    try:
        metrics = bind_metrics(config)  # first: nothing has started when the port is taken
    except ConfigError as e:
        return fail(str(e))
    try:
        host, port = split_listen(args.graphapi_listen)
        other_sinks, other_writers = make_sink(config.sinks, stats)
        store = open_store(None, data_dir)
        migrate(store)
        app = create_app(
            {
                "STORE": open_store(None, data_dir),
                "TOKEN": read_token(args.token_file),
                "GRAFANA_URL": args.grafana_url,
            }
        )
        server = make_server(app, host, port)
    except (ConfigError, InsecureListen, OSError, ValueError) as e:
        metrics.close()
        return fail(str(e))
    writer = StoreWriter(store, default_spool_dir(None, data_dir), stats)
    exporter = Exporter(
        config,
        FanoutSink([writer, *other_sinks.sinks]),
        stats=stats,
        collectors=sink_collectors([writer, *other_writers]),
        metrics=metrics,
    )
    exporter.start()
    threading.Thread(target=server.run, name="graphapi", daemon=True).start()

    def stop(*_):
        server.close()
        app.config["STORE"].close()
        exporter.stop()  # then the writer flushes what is left and closes its own store

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    reload_policies_on_sighup(exporter)
    graph = f"http://{host}:{server.effective_port}"
    print(
        f"groundtruth up: open      {graph}/ (what happened, the causal graph, timelines)\n"
        f"                metrics   http://{config.listen}/metrics\n"
        f"                graph API {graph}/api/graph  (OpenAPI: {graph}/api/openapi.json)\n"
        f"                events    chDB in {data_dir}\n"
        "                Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    exporter.run()
    return 0
