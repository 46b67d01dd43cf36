"""graphapi: the temporal causal graph as a Grafana data source, and Alertmanager's webhook.

``create_app(config)`` builds the Flask app; ``graphapi.server.serve(app, host, port)`` serves
it with waitress; ``groundtruth graphapi`` does both from the command line.

Config (defaults below, then the mapping passed in):
- ``STORE``: a ``store.db.Store`` shared by all requests (chDB: one open per process), or
- ``STORE_URL``: ``clickhouse://user:password@host:port/db``, opened per request;
- ``TOKEN``: bearer token every data endpoint requires ('' for none: loopback only);
- limits: window length, nodes, and the graph's own (``graph.request.GraphLimits``, each
  under its name in capitals: ``MAX_DEPTH``, ``MATCH_SECONDS``, ...).
- ``GRAPH_SNAPSHOT_SECONDS``: how long identical graph requests share one graph (0: never).
- ``GRAFANA_URL``: Grafana's base URL; when set, the investigation pages (``graphapi.pages``)
  link each graph to the same view on the investigation dashboard.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Flask

from graph.request import GraphLimits

DEFAULTS = {
    "STORE": None,
    "STORE_URL": "",
    "TOKEN": "",
    "DEFAULT_WINDOW_SECONDS": 3600,
    "MAX_WINDOW_SECONDS": 7 * 24 * 3600,
    # Nodes. Grafana's Node Graph panel draws at most 200 and hides the rest (NodeGraph.tsx,
    # defaultNodeCountLimit; the panel has no option to raise it): the default fits, the last
    # node being graphapi's own "N more not shown". Larger graphs are for other clients.
    "DEFAULT_LIMIT": 200,
    "MAX_LIMIT": 1500,
    **{name.upper(): value for name, value in asdict(GraphLimits()).items()},
    "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # webhook payloads
    # Identical graph requests share one graph this long: the panel's nodes and edges calls.
    "GRAPH_SNAPSHOT_SECONDS": 10.0,
    "JSON_SORT_KEYS": False,
    # /metrics: the scores of the traces of this last window, the highest this many.
    "TRACE_METRICS_WINDOW_SECONDS": 3600,
    "TRACE_METRICS_MAX": 20,
    "TRACE_SCORING": None,  # a graph.traces.TraceScoring; None: the thresholds file's
    "GRAFANA_URL": "",
}


def create_app(config: dict | None = None) -> Flask:
    """The graphapi Flask application, configured from DEFAULTS then ``config``."""
    from graph.traces import TraceScoring
    from graphapi import auth, errors, pages, request_args, snapshots, storage
    from graphapi.api import BLUEPRINTS
    from mixin.config import load_config

    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)
    if config:
        app.config.update(config)
    if app.config["TRACE_SCORING"] is None:
        app.config["TRACE_SCORING"] = TraceScoring.from_thresholds(load_config().raw["thresholds"])
    app.json.sort_keys = False
    errors.register(app)
    auth.register(app)
    app.before_request(request_args.refuse_repeated_args)  # after the token check
    storage.register(app)
    snapshots.register(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.register_blueprint(pages.bp)
    return app


def graph_limits(config) -> GraphLimits:
    """The graph's limits from an app config (DEFAULTS hold each under its name in capitals)."""
    return GraphLimits(**{name: config[name.upper()] for name in asdict(GraphLimits())})
