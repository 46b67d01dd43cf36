"""graphapi's blueprints, one per module, registered by ``graphapi.create_app``."""

from graphapi.api import alerts, graph, metrics, nodegraph, openapi, processes, traces

BLUEPRINTS = [graph.bp, nodegraph.bp, processes.bp, traces.bp, alerts.bp, metrics.bp, openapi.bp]
